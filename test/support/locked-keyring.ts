// A Secret Service whose keyring is locked and whose unlock prompt is never answered: every
// keychain read waits forever, as on a desktop where nobody types the password. A private
// D-Bus session bus with test/support/locked-keyring.py (python3-dbus) owning org.freedesktop.secrets.
import path from 'node:path';
import { startProcess, type Started } from './processes.ts';
import { startSessionBus } from './secret-service.ts';

export interface LockedKeyring {
  /** DBUS_SESSION_BUS_ADDRESS for the binary. */
  env: NodeJS.ProcessEnv;
  /** What the service was asked, in order (OpenSession, SearchItems, Unlock, Prompt). */
  calls(): string[];
  stop(): Promise<void>;
}

export async function startLockedKeyring(mode: 'prompt' | 'silent' = 'prompt'): Promise<LockedKeyring> {
  const bus = await startSessionBus(process.env);
  const env = { DBUS_SESSION_BUS_ADDRESS: bus.address };
  let service: Started | undefined;
  const stop = async () => {
    await service?.stop();
    bus.stop();
  };
  // The bus is stopped again if the service does not come up: nothing outlives a failed set-up.
  try {
    service = startProcess(
      '/usr/bin/python3',
      [path.join(import.meta.dirname, 'locked-keyring.py'), ...(mode === 'silent' ? ['silent'] : [])],
      { env: { ...process.env, ...env } },
    );
    const deadline = Date.now() + 10_000;
    while (!service.output().includes('ready')) {
      const exited = service.child.exitCode !== null || service.child.signalCode !== null;
      if (exited || Date.now() > deadline) throw new Error(`the locked keyring did not start: ${service.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const started = service;
  return {
    env,
    calls: () =>
      started
        .output()
        .split('\n')
        .filter((line) => line && line !== 'ready'),
    stop,
  };
}
