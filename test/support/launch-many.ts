// Starts many copies of a command at once from a separate process, as many Claude Code processes
// start their helper together, and reports each one's result. Node spawns synchronously: 50 spawns
// of a large binary block the spawning process for seconds on a busy machine, so a test that
// spawned them itself would stall its own in-process servers (the store proxy) meanwhile and blame
// the binary for the wait.
import { spawn } from 'node:child_process';
import { runTag } from './run-tag.ts';
import { track } from './processes.ts';

export interface ManyRun {
  command: string;
  args: string[];
  /** One environment per copy (each a separate Claude Code process). */
  envs: NodeJS.ProcessEnv[];
  cwd?: string;
  /** Each copy is killed after this long. */
  timeoutMs?: number;
}

export interface ManyResult {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From the moment the launcher began starting the copies to this copy's exit. */
  ms: number;
}

/** Runs every copy from a launcher process; resolves when all have ended. */
export function runMany(run: ManyRun): Promise<ManyResult[]> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a test that ends early stops the launcher and every copy with it.
    const launcher = spawn(process.execPath, [import.meta.filename], {
      env: { ...process.env, ...runTag() },
      detached: true,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    track(launcher);
    let output = '';
    launcher.stdout.on('data', (chunk) => (output += chunk));
    launcher.on('error', reject);
    launcher.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the launcher exited ${code}: ${output.slice(0, 500)}`));
      resolve(JSON.parse(output) as ManyResult[]);
    });
    launcher.stdin.end(JSON.stringify(run));
  });
}

async function launch(run: ManyRun): Promise<ManyResult[]> {
  const started = performance.now();
  const runs = run.envs.map(
    (env) =>
      new Promise<ManyResult>((resolve) => {
        const child = spawn(run.command, run.args, { env: { ...env, ...runTag() }, cwd: run.cwd ?? '/', stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk) => (stdout += chunk));
        child.stderr.on('data', (chunk) => (stderr += chunk));
        child.on('error', (error) => (stderr += `could not start ${run.command}: ${error.message}`));
        const timer = setTimeout(() => child.kill('SIGKILL'), run.timeoutMs ?? 600_000);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ pid: child.pid ?? 0, code, signal, stdout, stderr, ms: performance.now() - started });
        });
        child.stdin.on('error', () => {});
        child.stdin.end();
      }),
  );
  return Promise.all(runs);
}

if (import.meta.main) {
  let input = '';
  process.stdin.on('data', (chunk) => (input += chunk));
  process.stdin.on('end', async () => {
    process.stdout.write(JSON.stringify(await launch(JSON.parse(input) as ManyRun)));
  });
}
