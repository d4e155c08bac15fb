// Starting and stopping the servers tests need, on 127.0.0.1 only.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import net from 'node:net';
import { runTag } from './run-tag.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Every detached process the helpers started and that still runs. The end of each test file stops
 * them (test/support/per-file.ts), so a set-up hook that timed out, or failed after a start but
 * before its test could keep the handle, leaves nothing behind; the worker's exit kills what is left.
 */
const running = new Set<ChildProcess>();

/** Registers a detached child (its own process group) to be stopped at the end of the test file. */
export function track(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** Stops every tracked process still running: SIGTERM to its group, SIGKILL after 2 s. */
export async function stopTracked(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          signalGroup(child, 'SIGTERM');
          setTimeout(() => (signalGroup(child, 'SIGKILL'), resolve()), 2_000).unref();
        }),
    ),
  );
}

process.once('exit', () => {
  for (const child of running) signalGroup(child, 'SIGKILL');
});

export interface Started {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns a server in its own process group, so stop() ends it and anything it started. */
export function startProcess(command: string, args: string[], options: SpawnOptions = {}): Started {
  const child = spawn(command, args, {
    ...options,
    env: { ...(options.env ?? process.env), ...runTag() },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  return {
    child,
    output: () => output,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          resolve();
        }
        setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // already gone
          }
        }, 2_000).unref();
      }),
  };
}
