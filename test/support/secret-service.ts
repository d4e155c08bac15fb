// A real Secret Service for tests: a private D-Bus session bus with gnome-keyring-daemon on it,
// its login keyring unlocked, in a throwaway HOME. `secret-tool` is the independent client.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProcess, track, type Started } from './processes.ts';
import { runTag } from './run-tag.ts';

export interface SecretService {
  home: string;
  /** The variables a process needs to reach this keyring (merge into its env). */
  env: NodeJS.ProcessEnv;
  /** `secret-tool lookup service keybroker username ACCOUNT`, undefined when absent. */
  lookup(attributes: Record<string, string>): Promise<string | undefined>;
  /** `secret-tool store`. */
  store(attributes: Record<string, string>, value: string): Promise<void>;
  /** The `username` (keybroker's account) of every item of `service`, via `secret-tool search --all`. */
  accounts(service: string): Promise<string[]>;
  stop(): Promise<void>;
}

export interface SecretServiceOptions {
  /** Start the bus only, with no keyring daemon on it (no Secret Service at all). */
  withoutKeyring?: boolean;
  home?: string;
}

export async function startSecretService(options: SecretServiceOptions = {}): Promise<SecretService> {
  const home = options.home ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kb-keyring-'));
  const runtime = path.join(home, 'run');
  fs.mkdirSync(runtime, { recursive: true, mode: 0o700 });
  const base: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: home,
    XDG_DATA_HOME: path.join(home, '.local/share'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_RUNTIME_DIR: runtime,
    ...runTag(),
  };
  const removeHome = () => {
    if (!options.home) fs.rmSync(home, { recursive: true, force: true });
  };
  let bus: { address: string; stop(): void };
  try {
    bus = await startSessionBus(base);
  } catch (error) {
    removeHome();
    throw error;
  }
  const env = { ...base, DBUS_SESSION_BUS_ADDRESS: bus.address };
  let keyring: Started | undefined;
  // Whatever is started is stopped again when a later step fails: nothing outlives a failed set-up.
  const stopAll = async () => {
    await keyring?.stop();
    bus.stop();
    removeHome();
  };
  if (!options.withoutKeyring) {
    try {
      keyring = startProcess(
        'sh',
        ['-c', 'printf %s "$KEYRING_PASSWORD" | exec gnome-keyring-daemon --foreground --unlock --components=secrets'],
        {
          env: { ...env, KEYRING_PASSWORD: 'keybroker-test' },
        },
      );
      await waitForLoginKeyring(base, keyring);
      await waitForSecretService(env);
    } catch (error) {
      await stopAll();
      throw error;
    }
  }
  const secretTool = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile('secret-tool', args, { env }, (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as NodeJS.ErrnoException & { code?: number }).code ?? 1) || 1 : 0, stdout, stderr }),
      );
      // secret-tool may exit before reading its stdin (lookup, search): a late write's EPIPE is not a test failure.
      child.stdin?.on('error', () => {});
      child.stdin?.end(input);
    });
  const flat = (attributes: Record<string, string>) => Object.entries(attributes).flat();
  return {
    home,
    env,
    async lookup(attributes) {
      const result = await secretTool(['lookup', ...flat(attributes)]);
      return result.code === 0 ? result.stdout : undefined;
    },
    async store(attributes, value) {
      const result = await secretTool(['store', '--label', 'keybroker test', ...flat(attributes)], value);
      if (result.code !== 0) throw new Error('secret-tool store failed');
    },
    async accounts(service) {
      const result = await secretTool(['search', '--all', 'service', service]);
      // secret-tool prints each item's label and secret on stdout and its attributes on stderr.
      return [...result.stderr.matchAll(/^attribute\.username = (.*)$/gm)].map((match) => match[1]!);
    },
    stop: stopAll,
  };
}

/** A private D-Bus session bus (its own process group); `address` is its DBUS_SESSION_BUS_ADDRESS. */
export async function startSessionBus(env: NodeJS.ProcessEnv): Promise<{ address: string; stop(): void }> {
  const bus = spawn('dbus-daemon', ['--session', '--print-address=1', '--nofork', '--nopidfile'], {
    env: { ...env, ...runTag() },
    detached: true,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  track(bus);
  const stop = () => {
    try {
      process.kill(-bus.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    const address = await new Promise<string>((resolve, reject) => {
      let text = '';
      bus.stdout.on('data', (chunk) => {
        text += chunk;
        if (text.includes('\n')) resolve(text.split('\n')[0]!.trim());
      });
      bus.on('error', (error) => reject(new Error(`dbus-daemon did not start (${error.message}): apt-get install dbus`)));
      bus.on('exit', () => reject(new Error('dbus-daemon exited before printing its address')));
      timer = setTimeout(() => reject(new Error('dbus-daemon printed no address within 10 s')), 10_000);
    });
    return { address, stop };
  } catch (error) {
    stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The daemon creates the login keyring from the password it reads; D-Bus calls made before that can leave it without one. */
async function waitForLoginKeyring(env: NodeJS.ProcessEnv, daemon: Started): Promise<void> {
  const file = path.join(env['XDG_DATA_HOME']!, 'keyrings', 'login.keyring');
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(file)) {
    const exited = daemon.child.exitCode !== null || daemon.child.signalCode !== null;
    if (exited || Date.now() > deadline)
      throw new Error(
        `gnome-keyring-daemon created no login keyring${exited ? ' (it exited)' : ' within 10 s'}: ${daemon.output().trim() || 'no output'}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function waitForSecretService(env: NodeJS.ProcessEnv): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) =>
      execFile('secret-tool', ['search', 'service', 'keybroker-probe'], { env }, (error) =>
        resolve(!error || (error as { code?: number }).code === 1),
      ),
    );
    if (up) return;
    if (Date.now() > deadline) throw new Error('gnome-keyring-daemon did not come up on the test bus');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
