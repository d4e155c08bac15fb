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

/** Overrides of profile fields that setup may see in its shell but the helper, run by Claude Code, need not. */
const FIELD_VARIABLES = [
  'KEYBROKER_SECRET',
  'KEYBROKER_FIELD',
  'KEYBROKER_USER',
  'KEYBROKER_TIMEOUT',
  'KEYBROKER_CACHE_BACKEND',
  'KEYBROKER_REFRESH_AFTER',
];

/** What setup was told that the helper must be told again: the config file and profile it read. */
export interface HelperTarget {
  /** --config, else KEYBROKER_CONFIG: absolute. */
  configFile?: string;
  /** --profile, else KEYBROKER_PROFILE. */
  profile?: string;
  /** KEYBROKER_* field overrides set in setup's shell, which the written command does not carry. */
  notCarried: string[];
}

/**
 * The config file and profile setup read, from its flags or its environment: Claude Code runs the
 * helper with neither, from any folder, so they go into the command (the file as an absolute path).
 */
export function helperTarget(flags: { config?: string; profile?: string }, env: NodeJS.ProcessEnv, cwd: string): HelperTarget {
  const target: HelperTarget = { notCarried: FIELD_VARIABLES.filter((name) => env[name]) };
  // A relative KEYBROKER_CONFIG is ignored everywhere (src/kernel/paths.ts); a relative --config was typed here, in this folder.
  const fromEnv = env['KEYBROKER_CONFIG'];
  const configFile = flags.config ?? (fromEnv && path.isAbsolute(fromEnv) ? fromEnv : undefined);
  if (configFile) target.configFile = path.resolve(cwd, configFile);
  const profile = flags.profile ?? (env['KEYBROKER_PROFILE'] || undefined);
  if (profile) target.profile = profile;
  return target;
}

export function settingsSnippet(options: {
  program: string;
  target?: HelperTarget;
  profile: Profile;
  gateway?: string;
  platform?: NodeJS.Platform;
}): ClaudeSettingsSnippet {
  const args: string[] = [];
  if (options.target?.configFile) args.push('--config', shellQuote(options.target.configFile, options.platform));
  if (options.target?.profile) args.push('--profile', shellQuote(options.target.profile, options.platform));
  const env: Record<string, string> = {};
  if (options.gateway) env['ANTHROPIC_BASE_URL'] = options.gateway;
  env['CLAUDE_CODE_API_KEY_HELPER_TTL_MS'] = String(recommendedTtlMs(options.profile.cache.refreshAfterMs));
  return { apiKeyHelper: args.length ? `${options.program} get ${args.join(' ')}` : options.program, env };
}

/** A helper keybroker may replace: one that runs a program named keybroker. */
function isKeybrokerHelper(command: unknown): boolean {
  return typeof command === 'string' && isKeybrokerProgram(helperProgram(command));
}

export interface WriteOutcome {
  file: string;
  /** The symlink's target that was written, when `file` is a link. */
  through?: string;
  backup?: string;
  replacedHelper?: string;
  /** The file already said all of it: not written, no backup. */
  unchanged?: boolean;
}

/** Managed settings are read by every developer's Claude Code: world-readable, written by an admin. */
const MANAGED_FILE_MODE = 0o644;
const MANAGED_FOLDER_MODE = 0o755;

/**
 * The file to write: a symlinked settings.json (dotfiles) is written through to its target, so
 * the link stays; a link whose target does not exist is refused rather than replaced.
 */
function writeTarget(file: string): string {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch {
    return file;
  }
  if (!stat.isSymbolicLink()) return file;
  try {
    return fs.realpathSync(file);
  } catch (error) {
    const link = fs.readlinkSync(file);
    throw new ConfigError(
      `${file} is a symlink to ${link}, which cannot be resolved (${(error as NodeJS.ErrnoException).code}); not replacing the link`,
      `create ${path.resolve(path.dirname(file), link)} (or remove the link), then run setup --write again`,
    );
  }
}

/** Creates the missing folders of `dir` with `mode` (set explicitly: the umask would narrow it). */
function makeFolders(dir: string, mode: number | undefined): void {
  const first = fs.mkdirSync(dir, { recursive: true, ...(mode !== undefined ? { mode } : {}) });
  if (first === undefined || mode === undefined) return;
  for (let created = dir; ; created = path.dirname(created)) {
    fs.chmodSync(created, mode);
    if (created === first || path.dirname(created) === created) break;
  }
}

export function mergeIntoSettings(
  link: string,
  snippet: ClaudeSettingsSnippet,
  options: { force: boolean; now: number; managed?: boolean },
): WriteOutcome {
  return mergeSettingsFile(link, options, (existing, file) => {
    const current = existing['apiKeyHelper'];
    let replacedHelper: string | undefined;
    if (current !== undefined && current !== snippet.apiKeyHelper) {
      if (!isKeybrokerHelper(current) && !options.force) {
        throw new UsageError(
          `${file} already has an apiKeyHelper that keybroker did not write (${JSON.stringify(current)}); left unchanged`,
          'run with --force to replace it (a backup is kept)',
        );
      }
      replacedHelper = String(current);
    }
    const oldEnv =
      existing['env'] && typeof existing['env'] === 'object' && !Array.isArray(existing['env'])
        ? (existing['env'] as Record<string, unknown>)
        : {};
    return {
      merged: { ...existing, apiKeyHelper: snippet.apiKeyHelper, env: { ...oldEnv, ...snippet.env } },
      ...(replacedHelper ? { replacedHelper } : {}),
    };
  });
}

/**
 * Merges the Claude apps gateway's sign-in settings into a managed settings file. Claude Code refuses
 * to start with a pinned gateway sign-in and an API key helper both set, so an apiKeyHelper there is
 * refused, or removed with --force.
 */
export function mergeAppsGatewaySettings(
  link: string,
  settings: Record<string, string>,
  options: { force: boolean; now: number },
): WriteOutcome {
  return mergeSettingsFile(link, { ...options, managed: true }, (existing, file) => {
    const { apiKeyHelper, ...rest } = existing;
    if (apiKeyHelper !== undefined && !options.force) {
      throw new UsageError(
        `${file} has an apiKeyHelper (${JSON.stringify(apiKeyHelper)}): with a pinned gateway sign-in as well, Claude Code refuses to start; left unchanged`,
        'run with --force to remove the apiKeyHelper (a backup is kept): Claude Code signs in to the gateway itself',
      );
    }
    return { merged: { ...rest, ...settings }, ...(apiKeyHelper !== undefined ? { replacedHelper: String(apiKeyHelper) } : {}) };
  });
}

/** Reads a settings file (a link written through), merges, and writes it atomically after a backup; nothing when unchanged. */
function mergeSettingsFile(
  link: string,
  options: { now: number; managed?: boolean },
  merge: (existing: Record<string, unknown>, file: string) => { merged: Record<string, unknown>; replacedHelper?: string },
): WriteOutcome {
  const file = writeTarget(link);
  const { existing, text } = readSettings(file);
  const { merged, replacedHelper } = merge(existing, file);
  const outcome: WriteOutcome = { file: link, ...(file !== link ? { through: file } : {}), ...(replacedHelper ? { replacedHelper } : {}) };
  if (text !== undefined && JSON.stringify(merged) === JSON.stringify(existing)) return { ...outcome, unchanged: true };
  makeFolders(path.dirname(file), options.managed ? MANAGED_FOLDER_MODE : undefined);
  if (text !== undefined) {
    const stamp = new Date(options.now).toISOString().replace(/[:.]/g, '-');
    outcome.backup = `${link}.keybroker-backup-${stamp}`;
    fs.copyFileSync(file, outcome.backup);
  }
  // The user's file keeps its mode (new: private); the managed file is readable by every user.
  const mode = options.managed ? MANAGED_FILE_MODE : text !== undefined ? fs.statSync(file).mode & 0o777 : 0o600;
  writeAtomically(file, `${JSON.stringify(merged, null, 2)}\n`, mode);
  return outcome;
}

/** A settings file's JSON object ({} when absent or empty) and its text (undefined when absent). */
function readSettings(file: string): { existing: Record<string, unknown>; text: string | undefined } {
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code})`, 'check its permissions');
    }
  }
  if (text === undefined || text.trim() === '') return { existing: {}, text };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `${file} is not valid JSON (${(error as Error).message}); not touching it`,
      'fix it by hand, then run setup --write again',
    );
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new ConfigError(`${file} is not a JSON object; not touching it`, 'fix it by hand');
  return { existing: parsed as Record<string, unknown>, text };
}

/** A fresh file beside the target, its mode set explicitly (not narrowed by the umask), flushed, then renamed over it. */
function writeAtomically(file: string, content: string, mode: number): void {
  const temp = `${file}.keybroker-${process.pid}-${Date.now()}.tmp`;
  const fd = fs.openSync(temp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
}
