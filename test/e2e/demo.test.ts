// `npm run demo` on the built binary: every step passes, with and without a keychain, no key is
// ever printed in full, and everything it started is gone afterwards, also after Ctrl-C.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSecretService, type SecretService } from '../support/secret-service.ts';

const root = path.resolve(import.meta.dirname, '../..');
// The gateway fake mints sk-test-<24 hex> and has a master key sk-test-master-<12 hex>.
const FULL_KEY = /sk-test-(master-)?[0-9a-f]{12}/;

interface DemoRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/**
 * Runs `node bin/demo.ts` in its own process group; `interruptAt` sends SIGINT to the whole group
 * once that text has been printed, as Ctrl-C in a terminal does.
 */
function runDemo(env: NodeJS.ProcessEnv, interruptAt?: string): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/demo.ts'], {
      cwd: root,
      env: { ...env, KEYBROKER_SKIP_BUILD: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    let interrupted = false;
    const collect = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (interruptAt && !interrupted && output.includes(interruptAt)) {
        interrupted = true;
        process.kill(-child.pid!, 'SIGINT');
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, output });
    });
  });
}

/** Every numbered step's heading, in order. */
function stepNumbers(output: string): number[] {
  return [...output.matchAll(/^(\d+)\. /gm)].map((match) => Number(match[1]));
}

function portOpen(url: string): Promise<boolean> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: Number(port) }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** The store and gateway URLs and the work folder the demo announced. */
function announced(output: string): { store: string; gateway: string; dir: string } {
  return {
    store: /store: .* at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!,
    gateway: /gateway: .* at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!,
    dir: /everything runs on this machine, in (\S+)/.exec(output)![1]!,
  };
}

async function expectEverythingStopped(output: string): Promise<void> {
  const { store, gateway, dir } = announced(output);
  expect(await portOpen(store), 'moto still listening').toBe(false);
  expect(await portOpen(gateway), 'the gateway still listening').toBe(false);
  expect(fs.existsSync(dir), `${dir} left behind`).toBe(false);
}

/** This shell's environment with no Secret Service reachable. */
function withoutKeychain(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KEYBROKER_DEBUG: undefined,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${path.join(os.tmpdir(), 'keybroker-demo-no-bus')}`,
  };
}

describe('npm run demo', () => {
  let keyring: SecretService;
  beforeAll(async () => {
    keyring = await startSecretService();
  });
  afterAll(async () => {
    await keyring?.stop();
  });

  it('runs every step with no keychain, says it falls back to a private file, and prints no key', async () => {
    const run = await runDemo(withoutKeychain());
    expect(run.status, run.output).toBe(0);
    expect(stepNumbers(run.output)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // 1-2: provisioned by `admin rotate` (minted at the gateway) and listed.
    expect(run.output).toMatch(/\$ keybroker admin rotate --user \S+\n.*: rotated to version /);
    expect(run.output).toMatch(/USER +VERSION .*\n.*\n +1 developer/);
    // The auto backend says once that it uses a file instead of the keychain.
    expect(run.output.match(/no usable keychain/g)?.length).toBeGreaterThanOrEqual(1);
    expect(run.output).toContain('caching the key in a private file');
    // 3-4: the store, then the cache, both key 1.
    // (The fallback notice follows the success it waited for.)
    expect(run.output).toMatch(/from store\n(?: +keybroker: no usable keychain[^\n]*\n)? +stdout: key 1 sha256:[0-9a-f]{8}, \d+ ms/);
    expect(run.output).toMatch(/from cache\n +stdout: key 1 sha256:[0-9a-f]{8}, \d+ ms/);
    // 5: status reads the cache.
    expect(run.output).toMatch(/cache +file \(configured: auto\)/);
    // 6-8: rotated with a grace; the gateway keeps accepting what the developer holds; then key 2 arrives.
    expect(run.output).toContain('the gateway accepts the old key for 10s more');
    expect(run.output).toMatch(/with key 1 sha256:[0-9a-f]{8} -> HTTP 200/);
    expect(run.output).toMatch(/stdout: key 2 sha256:[0-9a-f]{8}/);
    // 9: setup's snippet has this binary and the demo gateway.
    expect(run.output).toMatch(/"apiKeyHelper": ".*dist\/keybroker'?( get --config '[^']+')?"/);
    expect(run.output).toMatch(/"ANTHROPIC_BASE_URL": "http:\/\/127\.0\.0\.1:\d+"/);
    // 10: doctor went through every layer and failed none.
    for (const check of [
      'configuration',
      'store identity',
      'secret readable',
      'key usable',
      'cache round trip',
      'apiKeyHelper',
      'gateway models',
      'gateway message',
      'gateway streaming',
    ]) {
      expect(run.output).toMatch(new RegExp(`\\[ OK \\] ${check}: `));
    }
    expect(run.output).not.toContain('[FAIL]');
    expect(run.output).toMatch(/doctor: .*0 fail/);
    // 11-12: the old key retired at the gateway; the cache cleared.
    expect(run.output).toMatch(/with key 1 sha256:[0-9a-f]{8} -> HTTP 401/);
    expect(run.output).toContain('removed the cached key from the file cache');
    expect(run.output).toMatch(/^Done: /m);
    expect(run.output).not.toMatch(FULL_KEY);
    expect(run.output).not.toContain('LEAKED');
    await expectEverythingStopped(run.output);
  });

  it('caches in the keychain when there is one, and leaves nothing in it', async () => {
    const run = await runDemo({ ...process.env, KEYBROKER_DEBUG: undefined, ...keyring.env });
    expect(run.status, run.output).toBe(0);
    expect(stepNumbers(run.output)).toHaveLength(12);
    expect(run.output).not.toContain('no usable keychain');
    expect(run.output).toMatch(/cache +keychain/);
    expect(run.output).toMatch(/\[ OK \] cache round trip: .*keychain/);
    expect(run.output).toContain('removed the cached key from the keychain');
    expect(run.output).toMatch(/^Done: /m);
    expect(run.output).not.toMatch(FULL_KEY);
    expect(await keyring.accounts('keybroker')).toEqual([]);
    await expectEverythingStopped(run.output);
  });

  it('on Ctrl-C stops the store and the gateway, removes its files and forgets the cached key', async () => {
    // Step 5 starts once two gets have cached key 1 in the keychain.
    const run = await runDemo({ ...process.env, KEYBROKER_DEBUG: undefined, ...keyring.env }, '\n5. ');
    expect(run.status, run.output).toBe(130);
    expect(run.output).toContain('SIGINT: stopping');
    expect(run.output).not.toContain('demo failed');
    expect(await keyring.accounts('keybroker')).toEqual([]);
    expect(run.output).not.toMatch(/^Done: /m);
    expect(run.output).not.toMatch(FULL_KEY);
    await expectEverythingStopped(run.output);
  });
});
