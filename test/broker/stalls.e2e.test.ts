// Stalls and hangs of the fault matrix, through the built binary: a lock that cannot be taken,
// a stale lock from the future, a FIFO where a file belongs, and the messages of disk faults.
// Times are bounded against a normal cold get measured in this run, never an absolute number.
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminPut, developer, startStoreChain, stderrLines, type Developer, type StoreChain } from './e2e-world.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import { bindReadOnly, chownToOther, fullTmpfs, runBinaryAsOther } from '../support/other-user.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';
import { loadConfig } from '../../src/config/config.ts';
import { lockFilePath } from '../../src/broker/lock.ts';
import { processStartTime } from '../../src/broker/caller.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';

const KEY = 'sk-test-stalls-one';
// A long store timeout makes the old stall (timeout + 1 s of waiting for a lock) unmistakable.
const PROFILE = { timeout: '10s', cache: { backend: 'none' } };

let chain: StoreChain;
/** The slowest of three normal cold gets in this run: every bound below is twice it. */
let coldMs = 0;
let dev: Developer | undefined;
const undo: (() => void)[] = [];

beforeAll(async () => {
  chain = await startStoreChain();
  await adminPut(chain.moto, KEY);
  const baseline = developer(chain.faults.url(), PROFILE);
  for (let i = 0; i < 3; i++) {
    const result = await baseline.get();
    expect(result).toMatchObject({ code: 0, stdout: KEY });
    coldMs = Math.max(coldMs, result.ms);
  }
  baseline.remove();
  console.info(`normal cold get: ${Math.round(coldMs)} ms (the slowest of 3)`);
}, 180_000);
afterAll(async () => chain?.stop());
beforeEach(() => chain.faults.set({ kind: 'pass' }));
afterEach(() => {
  for (const step of undo.splice(0).reverse()) step();
  dev?.remove();
  dev = undefined;
});

const accountOf = (d: Developer) => cacheAccount(loadConfig({ env: d.env }).profile, () => osLoginName(d.env));
const locksDir = (d: Developer) => path.join(d.home, 'run', 'locks');
const lockFile = (d: Developer) => lockFilePath(locksDir(d), accountOf(d));

/** The key, in at most twice a normal cold get; a slower run is held against a cold get measured again now (the machine's load moves). */
async function expectQuickKey(result: { code: number | null; stdout: string; ms: number }): Promise<void> {
  expect(result).toMatchObject({ code: 0, stdout: KEY });
  if (result.ms > 2 * coldMs) {
    const baseline = developer(chain.faults.url(), PROFILE);
    try {
      coldMs = Math.max(coldMs, (await baseline.get()).ms);
    } finally {
      baseline.remove();
    }
  }
  expect(result.ms).toBeLessThanOrEqual(2 * coldMs);
}

describe('a lock that cannot be taken means no lock: at once, said once', () => {
  it('a read-only lock folder (bind mount)', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    fs.mkdirSync(locksDir(dev), { recursive: true, mode: 0o700 });
    undo.push(bindReadOnly(locksDir(dev)));
    const result = await dev.get();
    await expectQuickKey(result);
    expect(stderrLines(result)).toEqual([
      expect.stringMatching(
        /^keybroker: no refresh lock: cannot write .*\.lock \(EROFS: the file system is read-only\); reading the store without it$/,
      ),
    ]);
  });

  it('a lock folder its user cannot write (chmod 500, run as uid 65534)', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    fs.mkdirSync(locksDir(dev), { recursive: true, mode: 0o700 });
    chownToOther(dev.home);
    const asOther = () => runBinaryAsOther(['get'], { env: dev!.env });
    const normal = await asOther();
    expect(normal).toMatchObject({ code: 0, stdout: KEY, stderr: '' });
    fs.chmodSync(locksDir(dev), 0o500);
    const result = await asOther();
    expect(result).toMatchObject({ code: 0, stdout: KEY });
    expect(result.ms).toBeLessThanOrEqual(2 * Math.max(coldMs, normal.ms));
    expect(stderrLines(result)).toEqual([
      expect.stringMatching(/^keybroker: no refresh lock: cannot write .*\(EACCES: permission denied\); reading the store without it$/),
    ]);
  });

  it('a full disk: no wait, no lock file or descriptor left behind', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    undo.push(fullTmpfs(path.join(dev.home, 'run'), (dir) => fs.mkdirSync(path.join(dir, 'locks'), { mode: 0o700 })));
    const result = await dev.get();
    await expectQuickKey(result);
    expect(stderrLines(result)).toEqual([
      expect.stringMatching(/^keybroker: no refresh lock: cannot write .* \(ENOSPC: the disk is full\); reading the store without it$/),
    ]);
    expect(fs.readdirSync(locksDir(dev))).toEqual([]);
  });
});

describe('stale locks', () => {
  it('a 0-byte lock whose time is in the future (clock set back) is not young', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    fs.mkdirSync(locksDir(dev), { recursive: true, mode: 0o700 });
    fs.writeFileSync(lockFile(dev), '', { mode: 0o600 });
    const future = new Date(Date.now() + 3_600_000);
    fs.utimesSync(lockFile(dev), future, future);
    const result = await dev.get();
    await expectQuickKey(result);
    expect(result.stderr).toBe('');
  });

  it('a lock naming a live process that is not keybroker, with no start time, is judged by its program', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    const unrelated = spawn('sleep', ['60'], { stdio: 'ignore' });
    undo.push(() => unrelated.kill('SIGKILL'));
    fs.mkdirSync(locksDir(dev), { recursive: true, mode: 0o700 });
    fs.writeFileSync(lockFile(dev), `${unrelated.pid} - 0123456789ab\n`, { mode: 0o600 });
    const result = await dev.get();
    await expectQuickKey(result);
    expect(result.stderr).toBe('');
  });

  it('a lock stamped an hour ahead, held by a live but stopped keybroker, is not waited for', async () => {
    // The holder: the same executable, stopped while it waits on a store that never answers.
    const hole = net.createServer(() => {}).listen(0, '127.0.0.1');
    await once(hole, 'listening');
    const other = developer(`http://127.0.0.1:${(hole.address() as net.AddressInfo).port}`, PROFILE);
    const holder = spawn(BINARY, ['get'], { env: other.env, stdio: 'ignore' });
    await once(holder, 'spawn');
    holder.kill('SIGSTOP');
    undo.push(() => {
      holder.kill('SIGKILL');
      hole.close();
      other.remove();
    });
    dev = developer(chain.faults.url(), PROFILE);
    fs.mkdirSync(locksDir(dev), { recursive: true, mode: 0o700 });
    fs.writeFileSync(lockFile(dev), `${holder.pid} ${processStartTime(holder.pid!)} 0123456789ab\n`, { mode: 0o600 });
    const future = new Date(Date.now() + 3_600_000);
    fs.utimesSync(lockFile(dev), future, future);
    // A safety net well past the bound: the old wait ran until killed.
    const result = await runBinary(['get'], { env: dev.env, timeoutMs: Math.max(30_000, 10 * coldMs) });
    await expectQuickKey(result);
    expect(result.stderr).toBe('');
  });
});

describe('a folder where the lock file belongs', () => {
  it('means no lock: the store is read, and while it is down the cached key is served', async () => {
    dev = developer(chain.faults.url(), { timeout: '10s', cache: { backend: 'file', refreshAfter: '1s' } });
    expect(await dev.get()).toMatchObject({ code: 0, stdout: KEY });
    fs.mkdirSync(lockFile(dev), { recursive: true, mode: 0o700 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const noLock = /^keybroker: no refresh lock: .*\.lock is a folder, not a lock file; reading the store without it$/;
    const fresh = await dev.get();
    await expectQuickKey(fresh);
    expect(stderrLines(fresh)).toEqual([expect.stringMatching(noLock)]);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    chain.faults.set({ kind: 'reset' });
    const stale = await dev.get();
    expect(stale).toMatchObject({ code: 0, stdout: KEY });
    expect(stderrLines(stale)).toEqual([expect.stringMatching(noLock), expect.stringMatching(/serving the cached key read \d+s ago$/)]);
  });
});

describe('a FIFO where a file belongs never blocks get', () => {
  const mkfifo = (file: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    execFileSync('mkfifo', ['-m', '600', file]);
  };

  it("at the cache file: warned, replaced by the store's key", async () => {
    dev = developer(chain.faults.url(), { timeout: '10s' });
    const file = path.join(dev.home, 'cache', 'keys', `${sha256Hex(accountOf(dev)).slice(0, 24)}.json`);
    mkfifo(file);
    const result = await dev.get();
    await expectQuickKey(result);
    expect(stderrLines(result)).toEqual([expect.stringMatching(/the cache file .* is a FIFO, not a regular file: not used/)]);
    expect(fs.statSync(file).isFile()).toBe(true);
  });

  it('at a state record and at the lock file', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    mkfifo(path.join(dev.home, 'run', 'state', `${sha256Hex(['failure', accountOf(dev)].join('\0')).slice(0, 24)}.failure`));
    mkfifo(lockFile(dev));
    const result = await dev.get();
    await expectQuickKey(result);
    expect(result.stderr).toBe('');
  });
});

describe('messages that tell the truth', () => {
  it('a cached key stamped in the future, served while the store is down, is not "read -59m ago"', async () => {
    dev = developer(chain.faults.url(), { timeout: '10s', cache: { backend: 'file' } });
    const file = path.join(dev.home, 'cache', 'keys', `${sha256Hex(accountOf(dev)).slice(0, 24)}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      file,
      serializeEntry({ key: KEY, version: 'v1', secret: 'claude-code/keys/alice', fetchedAt: Date.now() + 3_600_000 }),
      { mode: 0o600 },
    );
    chain.faults.set({ kind: 'reset' });
    const result = await dev.get();
    expect(result).toMatchObject({ code: 0, stdout: KEY });
    expect(result.stderr).not.toMatch(/read -\d|ago/);
    expect(result.stderr).toMatch(/serving the cached key read at a time still ahead of this clock \(the clock was set back\)\n$/);
  });

  it('a read-only or full cache folder says so, not "check permissions"', async () => {
    dev = developer(chain.faults.url(), { timeout: '10s', cache: { backend: 'file' } });
    const keys = path.join(dev.home, 'cache', 'keys');
    fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
    undo.push(bindReadOnly(keys));
    const readOnly = await dev.get();
    expect(readOnly).toMatchObject({ code: 0, stdout: KEY });
    expect(stderrLines(readOnly)).toEqual([
      expect.stringMatching(
        /^keybroker: the key was not cached: cannot write the cache file .* \(EROFS: the file system is read-only\): set KEYBROKER_CACHE_DIR to a writable folder$/,
      ),
    ]);
    undo.pop()!();

    undo.push(fullTmpfs(keys));
    const full = await dev.get();
    expect(full).toMatchObject({ code: 0, stdout: KEY });
    expect(stderrLines(full)).toEqual([
      expect.stringMatching(
        /^keybroker: the key was not cached: cannot write the cache file .* \(ENOSPC: the disk is full\): free some disk space$/,
      ),
    ]);
  });

  it('get >/dev/full is an output failure (exit 11) with a truthful line, not an internal error', async () => {
    dev = developer(chain.faults.url(), PROFILE);
    const full = fs.openSync('/dev/full', 'w');
    const child = spawn(BINARY, ['get'], { env: dev.env, stdio: ['ignore', full, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    fs.closeSync(full);
    expect(code).toBe(11);
    expect(stderr).toBe(
      'keybroker: cannot write to standard output (the disk it goes to is full); nothing was delivered: free space where the output goes, or send it elsewhere\n',
    );
  });

  it('a 4,100-character HOME gives short lines that do not advise cache clear', async () => {
    dev = developer(chain.faults.url(), { timeout: '10s', cache: { backend: 'file' } });
    const env: NodeJS.ProcessEnv = { ...dev.env, HOME: `/tmp/${'h'.repeat(4_100 - 5)}` };
    for (const name of ['XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'XDG_RUNTIME_DIR', 'KEYBROKER_CACHE_DIR', 'KEYBROKER_RUNTIME_DIR'])
      delete env[name];
    const result = await runBinary(['get'], { env });
    expect(result).toMatchObject({ code: 0, stdout: KEY });
    const lines = stderrLines(result);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.length).toBeLessThan(400);
      expect(line).not.toContain('cache clear');
    }
    expect(result.stderr).toMatch(/set KEYBROKER_CACHE_DIR to a shorter folder/);
  });
});
