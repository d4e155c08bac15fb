// Before any test: the system tools the tests need (installed or named, test/support/system-tools.ts),
// and dist/keybroker built once (end-to-end tests run the binary users run). After the last test:
// no process this run started may still be running, and the list of what this platform skipped.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { platformSetup, skipsOfRun, type PlatformSession } from './platform.ts';
import { ensureSystemTools } from './system-tools.ts';
import { RUN_TAG, processesOfRun } from './run-tag.ts';

/** A process the suite started that ends on its own (a detached background refresh) gets this long. */
const GRACE_MS = 5_000;

export default function setup(): () => Promise<void> {
  ensureSystemTools();
  const id = `${process.pid}-${randomBytes(4).toString('hex')}`;
  // The workers, and through the test helpers every process they start, inherit it.
  process.env[RUN_TAG] = id;
  if (process.env['KEYBROKER_SKIP_BUILD'] !== '1') {
    const root = path.resolve(import.meta.dirname, '../..');
    execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  const keychain = osKeychainForRun(id);
  return async () => {
    try {
      keychain.tearDown();
      printSkips();
    } finally {
      await checkNothingLeftRunning(id);
    }
  };
}

/** macOS: a throwaway default keychain; Windows: what the run writes to Credential Manager is removed after. */
function osKeychainForRun(id: string): PlatformSession {
  const run = ({ file, args }: { file: string; args: string[] }) =>
    execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const session = platformSetup(process.platform, run, { workDir: os.tmpdir(), password: `${id}-${randomBytes(16).toString('hex')}` });
  session.setUp();
  return session;
}

function printSkips(): void {
  const skips = skipsOfRun(process.platform);
  console.log(
    skips.length
      ? `test teardown: ${skips.length} skipped on ${process.platform}, each with its reason:\n${skips.map((line) => `  ${line}`).join('\n')}`
      : `test teardown: nothing skipped on ${process.platform}`,
  );
}

async function checkNothingLeftRunning(id: string): Promise<void> {
  const except = new Set([process.pid]);
  const deadline = Date.now() + GRACE_MS;
  let left = processesOfRun(id, except);
  while (left?.length && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    left = processesOfRun(id, except);
  }
  if (left === undefined) {
    console.log('test teardown: no /proc here, so leftover processes were not looked for');
    return;
  }
  if (left.length === 0) {
    console.log(`test teardown: no process this run started is still running (${RUN_TAG}=${id})`);
    return;
  }
  for (const { pid } of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // ended meanwhile
    }
  }
  // vitest reports an error thrown here but would still exit 0.
  process.exitCode = 1;
  throw new Error(
    `the test run left ${left.length} process(es) running ${GRACE_MS / 1000} s after its last test (now killed); the helper that started each must stop it, also when a later step fails:\n` +
      left.map(({ pid, command }) => `  ${pid} ${command}`).join('\n'),
  );
}
