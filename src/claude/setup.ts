// What `keybroker setup` writes into Claude Code's settings, and the careful merge into an
// existing file (other keys kept, a backup first, a foreign apiKeyHelper left alone).
import fs from 'node:fs';
import path from 'node:path';
import type { Profile } from '../config/config.ts';
import { ConfigError, UsageError } from '../kernel/errors.ts';
import { DEFAULT_CALLER_TTL_MS } from './helper-ttl.ts';
import { helperProgram, isKeybrokerProgram, shellQuote } from './settings.ts';

export interface ClaudeSettingsSnippet {
  apiKeyHelper: string;
  env: Record<string, string>;
}

/** This program as a command line: the SEA's own path, or node plus the script when run from source. */
export function thisProgram(platform: NodeJS.Platform = process.platform): string {
  if (process.getBuiltinModule('node:sea').isSea()) return shellQuote(process.execPath, platform);
  return `${shellQuote(process.execPath, platform)} ${shellQuote(path.resolve(process.argv[1] ?? ''), platform)}`;
}

/**
 * Claude Code keeps a helper's key for its TTL on top of keybroker's own refresh interval, so a
 * rotation reaches it within refreshAfter + TTL: half the interval (at most Claude Code's
 * default) keeps that under 1.5 refresh intervals while a warm get stays rare.
 */
export function recommendedTtlMs(refreshAfterMs: number): number {
  return Math.max(1_000, Math.min(DEFAULT_CALLER_TTL_MS, Math.floor(refreshAfterMs / 2)));
}

export function settingsSnippet(options: { program: string; profileFlag?: string; profile: Profile; gateway?: string; platform?: NodeJS.Platform }): ClaudeSettingsSnippet {
  const profileArgs = options.profileFlag ? ` get --profile ${shellQuote(options.profileFlag, options.platform)}` : '';
  const env: Record<string, string> = {};
  if (options.gateway) env['ANTHROPIC_BASE_URL'] = options.gateway;
  env['CLAUDE_CODE_API_KEY_HELPER_TTL_MS'] = String(recommendedTtlMs(options.profile.cache.refreshAfterMs));
  return { apiKeyHelper: `${options.program}${profileArgs}`, env };
}

/** A helper keybroker may replace: one that runs a program named keybroker. */
function isKeybrokerHelper(command: unknown): boolean {
  return typeof command === 'string' && isKeybrokerProgram(helperProgram(command));
}

export interface WriteOutcome {
  file: string;
  backup?: string;
  replacedHelper?: string;
}

export function mergeIntoSettings(file: string, snippet: ClaudeSettingsSnippet, options: { force: boolean; now: number }): WriteOutcome {
  let existing: Record<string, unknown> = {};
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code})`, 'check its permissions');
    }
  }
  if (text !== undefined && text.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${file} is not valid JSON (${(error as Error).message}); not touching it`, 'fix it by hand, then run setup --write again');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`${file} is not a JSON object; not touching it`, 'fix it by hand');
    existing = parsed as Record<string, unknown>;
  }
  const current = existing['apiKeyHelper'];
  const outcome: WriteOutcome = { file };
  if (current !== undefined && current !== snippet.apiKeyHelper) {
    if (!isKeybrokerHelper(current) && !options.force) {
      throw new UsageError(`${file} already has an apiKeyHelper that keybroker did not write (${JSON.stringify(current)}); left unchanged`, 'run with --force to replace it (a backup is kept)');
    }
    outcome.replacedHelper = String(current);
  }
  const oldEnv = existing['env'] && typeof existing['env'] === 'object' && !Array.isArray(existing['env']) ? (existing['env'] as Record<string, unknown>) : {};
  const merged = { ...existing, apiKeyHelper: snippet.apiKeyHelper, env: { ...oldEnv, ...snippet.env } };

  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (text !== undefined) {
    const stamp = new Date(options.now).toISOString().replace(/[:.]/g, '-');
    outcome.backup = `${file}.keybroker-backup-${stamp}`;
    fs.copyFileSync(file, outcome.backup);
  }
  const mode = text !== undefined ? fs.statSync(file).mode & 0o777 : 0o600;
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, JSON.stringify(merged, null, 2) + '\n', { mode });
  fs.renameSync(temp, file);
  return outcome;
}
