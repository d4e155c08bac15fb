// `cache clear` and `logout` in-process: a profile's entry goes from the file cache and (for the
// backends that may use it) the keychain; the sweep removes what no configured profile uses any
// more and leaves other profiles' entries; a keychain that cannot be opened stops nothing else.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheAccount } from '../../src/cache/account.ts';
import { clearCachedKeys, type ClearOptions } from '../../src/cache/clear.ts';
import { fileCache } from '../../src/cache/file.ts';
import { keychainCache, type KeychainCache } from '../../src/cache/keychain.ts';
import type { Profile } from '../../src/config/config.ts';
import { CacheUnavailable } from '../../src/kernel/errors.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';
import { testProfile } from '../broker/fakes.ts';
import { memoryKeyring, type MemoryKeyring } from './memory-keyring.ts';

let dir: string;
let env: NodeJS.ProcessEnv;
let keyring: MemoryKeyring;
let keychain: KeychainCache;
let debug: string[];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-clear-'));
  env = { KEYBROKER_CACHE_DIR: dir, KEYBROKER_RUNTIME_DIR: path.join(dir, 'run') };
  keyring = memoryKeyring();
  keychain = keychainCache({ env, platform: 'linux', keyring: keyring.module });
  debug = [];
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const keys = () => path.join(dir, 'keys');
const fileName = (account: string) => `${sha256Hex(account).slice(0, 24)}.json`;
const profile = (name: string, backend: Profile['cache']['backend']): Profile => ({ ...testProfile({ backend }), name, user: 'store' });
const accountOf = (of: Profile) => cacheAccount(of);

/** The entry of `account` in both caches. */
async function cached(account: string): Promise<void> {
  await fileCache(keys()).write(account, 'entry');
  keyring.items.set(`keybroker/${account}`, 'entry');
}

function clear(profiles: Profile[], options: ClearOptions = {}) {
  return clearCachedKeys(profiles, env, (message) => void debug.push(message), { keychain, ...options });
}

describe("clearing profiles' cached keys", () => {
  it("removes an `auto` profile's entry from the file cache and the keychain, and says where from", async () => {
    const auto = profile('default', 'auto');
    await cached(accountOf(auto));
    const result = await clear([auto]);
    expect(result.removed).toEqual(new Map([[accountOf(auto), ['the file cache', 'the keychain']]]));
    expect(result.leftovers).toBe(0);
    expect(result.keychainUnusable).toBeUndefined();
    expect(fs.readdirSync(keys())).toEqual([]);
    expect(keyring.items.size).toBe(0);
  });

  it('a "file" or "none" profile leaves the keychain alone; nothing cached is nothing removed', async () => {
    const file = profile('file', 'file');
    const none = profile('none', 'none');
    await cached(accountOf(file));
    await cached(accountOf(none));
    const result = await clear([file, none]);
    expect(result.removed).toEqual(
      new Map([
        [accountOf(file), ['the file cache']],
        [accountOf(none), ['the file cache']],
      ]),
    );
    expect(keyring.items.size).toBe(2);
    expect((await clear([file])).removed.get(accountOf(file))).toEqual([]);
  });

  it('a "file" profile is cleared with no keychain given (none is opened)', async () => {
    // A name no real profile has: this runs beside the OS keychain.
    const file = profile('kb-test-file-only', 'file');
    await fileCache(keys()).write(accountOf(file), 'entry');
    const result = await clearCachedKeys([file], env, () => {});
    expect(result.removed).toEqual(new Map([[accountOf(file), ['the file cache']]]));
  });

  it("by default a profile's account is its cached key's, for the OS user this runs as", async () => {
    const os = { ...profile('default', 'keychain'), user: 'os' as const };
    const account = cacheAccount(os, () => osLoginName(env));
    keyring.items.set(`keybroker/${account}`, 'entry');
    expect((await clear([os])).removed).toEqual(new Map([[account, ['the keychain']]]));
  });

  it("logout names the refresh token's account too", async () => {
    const sso = profile('sso', 'keychain');
    await cached('sso:abc');
    await cached('sso:abc:refresh');
    const result = await clear([sso], { accountsOf: () => ['sso:abc', 'sso:abc:refresh'] });
    expect([...result.removed.keys()]).toEqual(['sso:abc', 'sso:abc:refresh']);
    expect(keyring.items.size).toBe(0);
  });
});

describe('a keychain that cannot be opened', () => {
  beforeEach(() => {
    keyring.fail = new Error('org.freedesktop.DBus.Error.ServiceUnknown');
  });

  it('for `auto` profiles: the file cache is cleared all the same, and the keychain is asked once', async () => {
    const [one, two] = [profile('one', 'auto'), profile('two', 'auto')];
    await fileCache(keys()).write(accountOf(one), 'entry');
    const result = await clear([one, two], { sweep: { everything: true, current: [] } });
    expect(result.removed.get(accountOf(one))).toEqual(['the file cache']);
    expect(result.keychainUnusable).toBeUndefined();
    expect(debug).toEqual([
      'keychain not usable, nothing removed there: the Secret Service keyring is not usable (org.freedesktop.DBus.Error.ServiceUnknown)',
    ]);
    expect(keyring.opened).toHaveLength(1);
  });

  it('for a "keychain" profile: the command fails, unless told to leave it; then the result says why', async () => {
    const named = profile('named', 'keychain');
    await expect(clear([named])).rejects.toThrow('the Secret Service keyring is not usable (org.freedesktop.DBus.Error.ServiceUnknown)');
    const result = await clear([profile('auto', 'auto'), named], { leaveUnusableKeychain: true });
    expect(result.keychainUnusable).toBeInstanceOf(CacheUnavailable);
    expect(result.keychainUnusable!.message).toBe('the Secret Service keyring is not usable (org.freedesktop.DBus.Error.ServiceUnknown)');
  });

  it('an error that is not "cache unavailable" is the caller\'s', async () => {
    const broken = { ...keychain, remove: () => Promise.reject(new Error('a bug')) };
    await expect(clear([profile('auto', 'auto')], { keychain: broken })).rejects.toThrow('a bug');
  });
});

describe('the sweep (cache clear)', () => {
  it('removes what no configured profile uses, leaves what one does, and counts it', async () => {
    const mine = profile('default', 'auto');
    const current = [accountOf(mine), 'work:current', 'sso:abc:refresh'];
    await cached(accountOf(mine));
    await cached('work:current');
    await cached('sso:abc:refresh');
    await cached('default:earlier'); // this profile's earlier settings
    await cached('work:earlier'); // another configured profile's: its own business
    await cached('gone:xyz'); // a profile no longer configured
    fs.writeFileSync(path.join(keys(), `${fileName('default:killed')}.999999999.tmp`), 'sk-test-left', { mode: 0o600 });
    fs.writeFileSync(path.join(keys(), 'notes.txt'), 'not ours');
    fs.mkdirSync(path.join(dir, 'addons'));
    fs.writeFileSync(path.join(dir, 'addons', 'keyring-abc.node.999999999.tmp'), '');
    const result = await clear([mine], { sweep: { everything: false, current } });
    expect(result.removed.get(accountOf(mine))).toEqual(['the file cache', 'the keychain']);
    expect(fs.readdirSync(keys()).sort()).toEqual([fileName('work:current'), fileName('sso:abc:refresh'), 'notes.txt'].sort());
    expect([...keyring.items.keys()].sort()).toEqual(['keybroker/sso:abc:refresh', 'keybroker/work:current', 'keybroker/work:earlier']);
    expect(fs.readdirSync(path.join(dir, 'addons'))).toEqual([]);
    // files: default:earlier, work:earlier, gone:xyz, the killed write; keychain: default:earlier, gone:xyz; the addon temp.
    expect(result.leftovers).toBe(7);
  });

  it('--all removes every keybroker entry in both, and counts each once', async () => {
    const mine = profile('default', 'keychain');
    await cached(accountOf(mine));
    await cached('work:current');
    await cached('gone:xyz');
    keyring.items.set('other-app/x', 'theirs');
    const result = await clear([mine], { sweep: { everything: true, current: [accountOf(mine), 'work:current'] } });
    expect(result.removed.get(accountOf(mine))).toEqual(['the file cache', 'the keychain']);
    expect(result.leftovers).toBe(4);
    expect(fs.readdirSync(keys())).toEqual([]);
    expect([...keyring.items.keys()]).toEqual(['other-app/x']);
  });

  it('only "file" profiles: the keychain is not swept (nor opened); with one `auto` profile among them it is', async () => {
    await cached('gone:xyz');
    const fileOnly = await clear([profile('default', 'file')], { sweep: { everything: true, current: [] } });
    expect(fileOnly.leftovers).toBe(1);
    expect(keyring.items.has('keybroker/gone:xyz')).toBe(true);
    expect(keyring.opened).toEqual([]);
    const mixed = await clear([profile('default', 'file'), profile('work', 'auto')], { sweep: { everything: true, current: [] } });
    expect(mixed.leftovers).toBe(1);
    expect(keyring.items.has('keybroker/gone:xyz')).toBe(false);
  });

  it('an account a configured profile still uses is left, even under the name of a profile being cleared', async () => {
    const mine = profile('default', 'auto');
    await cached('default:still-used');
    await clear([mine], { sweep: { everything: false, current: [accountOf(mine), 'default:still-used'] } });
    expect(keyring.items.has('keybroker/default:still-used')).toBe(true);
  });

  it('a keys path that is not a folder holds nothing to sweep', async () => {
    fs.writeFileSync(keys(), '');
    const sweepOnly = { accountsOf: () => [], sweep: { everything: false, current: [] } };
    expect((await clear([profile('default', 'file')], sweepOnly)).leftovers).toBe(0);
  });

  it('a keychain that cannot list its items: the files are still swept, and debug says why', async () => {
    await cached('gone:xyz');
    const unlisted = { ...keychain, accounts: () => Promise.reject(new CacheUnavailable('the keychain is locked', 'unlock it')) };
    const result = await clear([profile('default', 'auto')], { keychain: unlisted, sweep: { everything: false, current: [] } });
    expect(result.leftovers).toBe(1);
    expect(debug).toEqual(["could not list the keychain's keybroker items: the keychain is locked"]);
  });

  it('a file that cannot be removed: CacheUnavailable that says to remove it by hand', async () => {
    fs.mkdirSync(path.join(keys(), fileName('gone:xyz')), { recursive: true });
    const error = await clear([profile('default', 'file')], { sweep: { everything: false, current: [] } }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(CacheUnavailable);
    expect((error as CacheUnavailable).line()).toBe(
      `cannot remove the cache file ${path.join(keys(), fileName('gone:xyz'))} (EISDIR): remove it by hand`,
    );
  });

  it('no cache folder yet: nothing to sweep', async () => {
    expect((await clear([profile('default', 'file')], { sweep: { everything: false, current: [] } })).leftovers).toBe(0);
  });
});
