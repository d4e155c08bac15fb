// Runs the built single executable the way Claude Code does: no TTY, stdin a pipe.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { runTag } from './run-tag.ts';

// bin/build.ts writes keybroker.exe on Windows.
export const BINARY = path.resolve(import.meta.dirname, `../../dist/keybroker${process.platform === 'win32' ? '.exe' : ''}`);

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
  cwd?: string;
  /** Defaults to the built binary. */
  command?: string;
}

export function runBinary(args: string[], options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(options.command ?? BINARY, args, {
      env: { ...options.env, ...runTag() },
      cwd: options.cwd ?? '/',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    // A safety net for a hung binary, not a speed bound: time bounds are test/support/time-bounds.ts.
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
    // A child that exits before reading its stdin must not crash the test run with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** A minimal environment: nothing of the developer's own machine leaks into a test. */
export function cleanEnv(extra: NodeJS.ProcessEnv, home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    KEYBROKER_MACHINE_CONFIG: path.join(home, 'machine-config.json'),
    ...runTag(),
    ...extra,
  };
}
