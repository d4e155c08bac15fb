// Which cache a profile gets: "none", "file", a named keychain (its failure is the command's), or
// `auto`: the keychain until it fails, then the fallback, said once per machine with the fix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheStore } from '../../src/cache/cache-store.ts';
import { openCache, plainKeychainReason, type CacheChoice } from '../../src/cache/select.ts';
import { CacheUnavailable } from '../../src/kernel/errors.ts';
import { memoryCache } from '../broker/fakes.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-select-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A keychain that answers from memory until `locked` is set, then throws CacheUnavailable. */
function fakeKeychain() {
  const memory = memoryCache();
  const keychain = {
    data: memory.data,
    locked: undefined as Error | undefined,
    calls: 0,
    store: undefined as unknown as CacheStore,
  };
  const guard = <T>(call: () => Promise<T>) => {
    keychain.calls++;
    return keychain.locked ? Promise.reject(keychain.locked) : call();
  };
  keychain.store = {
    kind: 'keychain',
    read: (account) => guard(() => memory.read(account)),
    write: (account, data) => guard(() => memory.write(account, data)),
    remove: (account) => guard(() => memory.remove(account)),
  };
  return keychain;
}

const LOCKED = () => new CacheUnavailable('the Secret Service keyring is not usable (org.freedesktop.DBus.Error.ServiceUnknown)', 'unlock');

function choose(overrides: Partial<CacheChoice> = {}) {
  const warnings: string[] = [];
  const choice: CacheChoice = {
    backend: 'auto',
    fallback: 'none',
    env: { KEYBROKER_CACHE_DIR: dir },
    warn: (line) => void warnings.push(line),
    ...overrides,
  };
  return { cache: openCache(choice), warnings };
}

describe('the named backends', () => {
  it('"none" keeps nothing', async () => {
    const { cache } = choose({ backend: 'none' });
    expect(cache.kind).toBe('none');
    await cache.write('a', 'data');
    expect(await cache.read('a')).toBeUndefined();
    expect(await cache.remove('a')).toBe(false);
  });

  it('"file" keeps entries in private files under the cache folder\'s keys/', async () => {
    const { cache } = choose({ backend: 'file' });
    expect(cache.kind).toBe('file');
    await cache.write('a', 'data');
    expect(await cache.read('a')).toBe('data');
    expect(fs.readdirSync(path.join(dir, 'keys'))).toHaveLength(1);
  });

  it('"keychain" is required: it serves from the keychain, and its failure is the caller\'s, with no fallback', async () => {
    const keychain = fakeKeychain();
    const { cache, warnings } = choose({ backend: 'keychain', fallback: 'file', keychain: keychain.store });
    expect(cache).toMatchObject({ kind: 'keychain', required: true });
    await cache.write('a', 'data');
    expect(await cache.read('a')).toBe('data');
    expect(await cache.remove('a')).toBe(true);
    expect(await cache.remove('a')).toBe(false);
    keychain.locked = LOCKED();
    await expect(cache.read('a')).rejects.toBe(keychain.locked);
    await expect(cache.write('a', 'x')).rejects.toBe(keychain.locked);
    expect(warnings).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'keys'))).toBe(false);
  });

  it('"keychain" without one given opens the OS keychain (lazily: nothing is asked yet)', () => {
    expect(choose({ backend: 'keychain' }).cache).toMatchObject({ kind: 'keychain', required: true });
    expect(choose({ backend: 'auto' }).cache.kind).toBe('keychain');
  });
});

describe('"auto"', () => {
  it('uses the keychain while it answers, and is not required', async () => {
    const keychain = fakeKeychain();
    const { cache, warnings } = choose({ keychain: keychain.store });
    await cache.write('a', 'data');
    expect(keychain.data.get('a')).toBe('data');
    expect(await cache.read('a')).toBe('data');
    expect(await cache.remove('a')).toBe(true);
    expect(cache.kind).toBe('keychain');
    expect(cache.required).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it('with "fallback": "file": after the first failure the rest of the run uses the file cache, and says so once', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    const { cache, warnings } = choose({ fallback: 'file', keychain: keychain.store });
    await cache.write('a', 'data');
    expect(cache.kind).toBe('file');
    expect(await cache.read('a')).toBe('data');
    expect(await cache.remove('a')).toBe(true);
    expect(keychain.calls).toBe(1);
    expect(warnings).toEqual([
      `keybroker: no usable keychain (this session has no Secret Service: usual over SSH, in WSL and in containers); caching the key in a private file under ${path.join(dir, 'keys')} instead ("fallback": "file")`,
    ]);
  });

  it('with no fallback: no cache, and the line says how to get one or to say none is wanted', async () => {
    const keychain = fakeKeychain();
    keychain.locked = new CacheUnavailable('the macOS Keychain is not usable (User interaction is not allowed.)', 'unlock');
    const { cache, warnings } = choose({ keychain: keychain.store });
    expect(await cache.read('a')).toBeUndefined();
    expect(cache.kind).toBe('none');
    await cache.write('a', 'data');
    expect(await cache.read('a')).toBeUndefined();
    expect(warnings).toEqual([
      'keybroker: no usable keychain (the macOS Keychain is not usable (User interaction is not allowed.)); not caching the key (each call reads the store): set "cache": {"fallback": "file"} in the profile to cache it in a private file (0600), or "backend": "none" to say no cache is wanted',
    ]);
  });

  it('says it once per machine: a private marker in the cache folder keeps the next runs quiet', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    const first = choose({ keychain: keychain.store });
    await first.cache.read('a');
    const marker = path.join(dir, 'auto-fallback-none.notice');
    expect(fs.statSync(marker).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(marker, 'utf8')).toMatch(/^\d{4}-\d\d-\d\dT.* the Secret Service keyring is not usable \(org\.freedesktop/);
    const second = choose({ keychain: keychain.store });
    await second.cache.read('a');
    expect(first.warnings).toHaveLength(1);
    expect(second.warnings).toEqual([]);
    // The file fallback is another choice: said once on its own.
    const file = choose({ fallback: 'file', keychain: keychain.store });
    await file.cache.read('a');
    expect(file.warnings).toHaveLength(1);
  });

  it('a cache folder that cannot hold the marker: said each time, nothing written elsewhere', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    const notAFolder = path.join(dir, 'file');
    fs.writeFileSync(notAFolder, '');
    for (let run = 0; run < 2; run++) {
      const { cache, warnings } = choose({ keychain: keychain.store, env: { KEYBROKER_CACHE_DIR: notAFolder } });
      await cache.read('a');
      expect(warnings).toHaveLength(1);
    }
  });

  it('calls in flight together that all find the keychain failing: said once', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    const held: (() => void)[] = [];
    const { cache } = choose({ keychain: keychain.store, holdNotice: (say) => void held.push(say) });
    await Promise.all([cache.read('a'), cache.read('b'), cache.write('c', 'data')]);
    expect(keychain.calls).toBe(3);
    expect(held).toHaveLength(1);
    const unheld = choose({ keychain: keychain.store });
    await Promise.all([unheld.cache.read('a'), unheld.cache.read('b')]);
    expect(unheld.warnings).toHaveLength(1);
  });

  it.skipIf(process.getuid?.() !== 0)('the marker is not written into a cache folder of another user', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    fs.chownSync(dir, 12345, 12345);
    const { cache, warnings } = choose({ keychain: keychain.store });
    await cache.read('a');
    expect(warnings).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'auto-fallback-none.notice'))).toBe(false);
  });

  it('the notice is held for the command to say after it succeeded', async () => {
    const keychain = fakeKeychain();
    keychain.locked = LOCKED();
    const held: (() => void)[] = [];
    const { cache, warnings } = choose({ keychain: keychain.store, holdNotice: (say) => void held.push(say) });
    await cache.read('a');
    await cache.read('b');
    expect(warnings).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'auto-fallback-none.notice'))).toBe(false);
    expect(held).toHaveLength(1);
    held[0]!();
    expect(warnings).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'auto-fallback-none.notice'))).toBe(true);
  });

  it('an error that is not "cache unavailable" is not a reason to fall back: it goes to the caller', async () => {
    const keychain = fakeKeychain();
    keychain.locked = new Error('a bug');
    const { cache, warnings } = choose({ fallback: 'file', keychain: keychain.store });
    await expect(cache.write('a', 'data')).rejects.toThrow('a bug');
    expect(cache.kind).toBe('keychain');
    expect(warnings).toEqual([]);
  });
});

describe('why there is no keychain, in plain words', () => {
  it.each([
    'Cannot autolaunch D-Bus without X11 $DISPLAY',
    'no $DISPLAY',
    'cannot AUTOLAUNCH',
    'org.freedesktop.DBus.Error.ServiceUnknown',
    'D-Bus error',
    'X11 missing',
  ])('a D-Bus error (%s) is "this session has no Secret Service"', (message) => {
    expect(plainKeychainReason(message)).toBe('this session has no Secret Service: usual over SSH, in WSL and in containers');
  });

  it('"no result found" is "no keyring answers": start one; anything else is said as it is', () => {
    expect(plainKeychainReason('Platform secure storage failure: Secret Service: no result found')).toBe(
      'no keyring answers on this session bus: start gnome-keyring or KeePassXC',
    );
    expect(plainKeychainReason('the keychain is locked')).toBe('the keychain is locked');
  });
});
