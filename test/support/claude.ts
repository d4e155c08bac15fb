// The real Claude Code (npm, the version package.json pins), run offline the way a developer runs
// `claude -p`: against a local gateway, with a throwaway HOME whose settings name the helper.
// Measured (FIELD-NOTES): it stays offline with ANTHROPIC_BASE_URL at a local server and
// CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC; stdin must be closed, else it waits 3 s for input.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY } from './binary.ts';
import { runTag } from './run-tag.ts';
import type { TestHome } from './e2e-home.ts';

/** The suite's Claude Code (npm); KEYBROKER_TEST_CLAUDE runs another build's executable instead. */
const CLAUDE = process.env['KEYBROKER_TEST_CLAUDE'] ?? path.resolve(import.meta.dirname, '../../node_modules/.bin/claude');

export interface ClaudeRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Until it exited, or until `until` matched. */
  ms: number;
}

export interface ClaudeOptions {
  /** Claude Code's whole environment (HOME included); the offline switches are added. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** ANTHROPIC_BASE_URL; absent: whatever `env` or the settings say. */
  gateway?: string;
  /** Leave telemetry on (a test about otelHeadersHelper); default off. */
  telemetry?: boolean;
  /** Stop it (SIGTERM) as soon as its output matches: a failing helper is retried for a long time. */
  until?: RegExp;
  /** A safety net for a hung run, not a speed bound. */
  timeoutMs?: number;
}

/** `claude ARGS` offline; resolves when it exits (or is stopped by `until`). */
export function runClaude(args: string[], options: ClaudeOptions): Promise<ClaudeRun> {
  const env: NodeJS.ProcessEnv = {
    ...options.env,
    ...(options.gateway ? { ANTHROPIC_BASE_URL: options.gateway } : {}),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ...(options.telemetry ? {} : { DISABLE_TELEMETRY: '1' }),
    ...runTag(),
  };
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(CLAUDE, args, { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let ms = 0;
    const check = () => {
      if (options.until && !ms && options.until.test(stdout + stderr)) {
        ms = performance.now() - started;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', (chunk) => void ((stdout += chunk), check()));
    child.stderr.on('data', (chunk) => void ((stderr += chunk), check()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: ms || performance.now() - started });
    });
  });
}

/**
 * Writes HOME/.claude/settings.json: apiKeyHelper = the built binary, keybroker's config file in
 * the settings' `env` (as a developer's settings carry it), and `settings` on top.
 */
function writeClaudeSettings(home: TestHome, settings: Record<string, unknown> = {}): void {
  fs.mkdirSync(path.join(home.dir, '.claude'), { recursive: true });
  const env = { KEYBROKER_CONFIG: home.configFile, ...((settings['env'] as Record<string, string> | undefined) ?? {}) };
  fs.writeFileSync(path.join(home.dir, '.claude', 'settings.json'), JSON.stringify({ apiKeyHelper: BINARY, ...settings, env }, null, 2));
}

export interface ClaudeInHomeOptions extends Omit<ClaudeOptions, 'env' | 'cwd'> {
  /** Written into HOME/.claude/settings.json (writeClaudeSettings). */
  settings?: Record<string, unknown>;
  /** More of Claude Code's own environment. */
  env?: NodeJS.ProcessEnv;
}

/**
 * `claude ARGS` as the developer of `home` runs it: its settings run keybroker with `home`'s
 * config (from the settings, not from Claude Code's environment), in `home` as the working folder.
 */
export function runClaudeIn(home: TestHome, args: string[], options: ClaudeInHomeOptions = {}): Promise<ClaudeRun> {
  const { settings, env, ...rest } = options;
  writeClaudeSettings(home, settings);
  return runClaude(args, { ...rest, env: { ...home.env(), KEYBROKER_CONFIG: undefined, ...env }, cwd: home.dir });
}
