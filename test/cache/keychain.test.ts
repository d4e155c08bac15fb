// The keychain cache over an in-memory keyring: what it reads, writes, removes and lists (only
// keybroker's items, in the Secret Service, never the kernel keyring), and how each failure reads:
// a library that cannot load, a keyring that errs, one that never answers (bounded, remembered).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keychainCache, keychainState, type KeychainOptions } from '../../src/cache/keychain.ts';
import { cacheFailure } from './cache-failure.ts';
import { memoryKeyring, type MemoryKeyring } from './memory-keyring.ts';

const LINUX_FIX = 'unlock your login keyring (or start gnome-keyring/KeePassXC), or set "cache": {"backend": "file"} in the profile';
const OTHER_FIX = 'unlock your keychain, or set "cache": {"backend": "file"} in the profile';

let runtime: string;
let keyring: MemoryKeyring;
beforeEach(() => {
  runtime = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-keychain-'));
  keyring = memoryKeyring();
});
afterEach(() => {
  keychainState.hung = false;
  fs.rmSync(runtime, { recursive: true, force: true });
});

function keychain(options: Partial<KeychainOptions> = {}) {
  return keychainCache({ env: { KEYBROKER_RUNTIME_DIR: runtime }, platform: 'linux', keyring: keyring.module, ...options });
}

describe('the keychain cache', () => {
  it('keeps entries under the service "keybroker" in the Secret Service: write, read, remove', async () => {
    const cache = keychain();
    expect(cache.kind).toBe('keychain');
    expect(await cache.read('default:abc')).toBeUndefined();
    await cache.write('default:abc', '{"v":1}');
    expect(keyring.items.get('keybroker/default:abc')).toBe('{"v":1}');
    expect(await cache.read('default:abc')).toBe('{"v":1}');
    expect(await cache.remove('default:abc')).toBe(true);
    expect(await cache.remove('default:abc')).toBe(false);
    expect(await cache.read('default:abc')).toBeUndefined();
    // Pinned on Linux: the kernel keyring forgets everything at logout.
    expect(keyring.opened.every((options) => JSON.stringify(options) === '{"linux":{"store":"secret-service"}}')).toBe(true);
  });

  it("lists keybroker's own accounts, not other applications' items", async () => {
    keyring.items.set('keybroker/default:abc', 'a');
    keyring.items.set('keybroker/work:def:refresh', 'b');
    keyring.items.set('other-app/default:abc', 'c');
    expect((await keychain().accounts()).sort()).toEqual(['default:abc', 'work:def:refresh']);
  });

  it('a keyring library that cannot load: CacheUnavailable that says to use the file cache', async () => {
    const cache = keychain({ keyring: () => Promise.reject(new Error('addon hash mismatch')) });
    const error = await cacheFailure(cache.read('default:abc'));
    expect(error.line()).toBe('cannot load the keychain library (addon hash mismatch): set "cache": {"backend": "file"} in the profile');
    expect((error.cause as Error).message).toBe('addon hash mismatch');
    await cacheFailure(cache.accounts());
  });

  it.each([
    ['linux', 'the Secret Service keyring', LINUX_FIX],
    ['darwin', 'the macOS Keychain', OTHER_FIX],
    ['win32', 'the Windows Credential Manager', OTHER_FIX],
  ] as const)('a keyring that errs on %s names it and the fix, with the first line of its error', async (platform, name, fix) => {
    const cause = new Error(`Platform secure storage failure: ${'x'.repeat(300)}\nsecond line`);
    keyring.fail = cause;
    const error = await cacheFailure(keychain({ platform }).write('default:abc', 'data'));
    expect(error.message).toBe(`${name} is not usable (Platform secure storage failure: ${'x'.repeat(167)})`);
    expect(error.fix).toBe(fix);
    expect(error.cause).toBe(cause);
  });

  it('a thrown non-Error is described as text; each call says what it was doing when it hung', async () => {
    keyring.fail = 'org.freedesktop.DBus.Error.ServiceUnknown';
    expect((await cacheFailure(keychain().remove('default:abc'))).message).toBe(
      'the Secret Service keyring is not usable (org.freedesktop.DBus.Error.ServiceUnknown)',
    );
    for (const [what, call] of [
      ['read', (cache: ReturnType<typeof keychain>) => cache.read('a')],
      ['write', (cache: ReturnType<typeof keychain>) => cache.write('a', 'b')],
      ['delete', (cache: ReturnType<typeof keychain>) => cache.remove('a')],
      ['list', (cache: ReturnType<typeof keychain>) => cache.accounts()],
    ] as const) {
      keychainState.hung = false;
      fs.rmSync(path.join(runtime, 'keychain-hung'), { force: true });
      keyring.delayMs = Infinity;
      expect((await cacheFailure(call(keychain({ timeoutMs: 20 })))).message).toBe(
        `the Secret Service keyring did not answer within 20 ms (${what}); it may be locked and waiting for a password`,
      );
    }
  });

  it("the fix of a machine whose platform is not given is this platform's", async () => {
    keyring.fail = new Error('locked');
    const error = await cacheFailure(keychainCache({ env: { KEYBROKER_RUNTIME_DIR: runtime }, keyring: keyring.module }).read('a'));
    expect(error.fix).toBe(process.platform === 'linux' ? LINUX_FIX : OTHER_FIX);
  });
});

describe('a keychain call that never returns', () => {
  it('fails within the bound, marks this run, and leaves a private note so other runs skip the keychain', async () => {
    keyring.delayMs = Infinity;
    const error = await cacheFailure(keychain({ timeoutMs: 30 }).read('default:abc'));
    expect(error.line()).toBe(
      `the Secret Service keyring did not answer within 30 ms (read); it may be locked and waiting for a password: ${LINUX_FIX}`,
    );
    expect(keychainState.hung).toBe(true);
    const marker = path.join(runtime, 'keychain-hung');
    expect(fs.statSync(marker).mode & 0o777).toBe(0o600);
    // This run does not ask again, even a keychain that would now answer.
    keyring.delayMs = 0;
    expect((await cacheFailure(keychain().read('default:abc'))).message).toMatch(
      /^the Secret Service keyring did not answer earlier in this run/,
    );
  });

  it('a call that answers in time leaves no mark, however long the bound would have run', async () => {
    keyring.delayMs = 5;
    const cache = keychain({ timeoutMs: 40 });
    await cache.write('default:abc', 'data');
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(keychainState.hung).toBe(false);
    expect(fs.existsSync(path.join(runtime, 'keychain-hung'))).toBe(false);
  });

  it('the default bound is seconds, not milliseconds: a keyring answering in 50 ms is used', async () => {
    keyring.delayMs = 50;
    keyring.items.set('keybroker/default:abc', 'data');
    expect(
      await keychainCache({ env: { KEYBROKER_RUNTIME_DIR: runtime }, platform: 'linux', keyring: keyring.module }).read('default:abc'),
    ).toBe('data');
  });

  it("another process's note holds for 5 minutes, then the keychain is asked again", async () => {
    const marker = path.join(runtime, 'keychain-hung');
    fs.writeFileSync(marker, 'then\n', { mode: 0o600 });
    const written = fs.statSync(marker).mtimeMs;
    keyring.items.set('keybroker/a', 'data');
    const at = (now: number) => keychain({ now: () => now }).read('a');
    expect((await cacheFailure(at(written + 5 * 60_000 - 1))).message).toMatch(
      /^another keybroker process found .* not asking it again for 5 min$/,
    );
    expect(await at(written + 5 * 60_000)).toBe('data');
  });

  it.skipIf(process.getuid?.() !== 0)('the note is not written into a runtime folder of another user', async () => {
    fs.chownSync(runtime, 12345, 12345);
    keyring.delayMs = Infinity;
    await cacheFailure(keychain({ timeoutMs: 20 }).read('a'));
    expect(fs.existsSync(path.join(runtime, 'keychain-hung'))).toBe(false);
  });
});
