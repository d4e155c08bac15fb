// Where a profile's key is cached is bound to the user it was read for: the slot of "user": "os"
// is the resolved secret name's, an entry from another secret is not served, and a relative cache
// folder (a repository's) is never read.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheAccount, cacheSlot, entryBelongs, knownCacheAccount, refreshTokenAccount } from '../../src/cache/account.ts';
import { fileCache } from '../../src/cache/file.ts';
import { CacheUnavailable, ConfigError } from '../../src/kernel/errors.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';
import { getKey } from '../../src/broker/broker.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import type { Profile } from '../../src/config/config.ts';
import { testProfile, world } from '../broker/fakes.ts';

const storeProfile = (): Profile => ({ ...testProfile(), user: 'store' });
const noUser = (): string => {
  throw new ConfigError('cannot tell your OS login name: this user has no passwd entry and neither USER nor LOGNAME is set', 'set USER');
};

describe('the cache slot', () => {
  it('"user": "os": one slot per resolved secret, so alice\'s key is never carol\'s', () => {
    const alice = cacheSlot(testProfile(), () => 'alice');
    const carol = cacheSlot(testProfile(), () => 'carol');
    expect(alice.secret).toBe('claude-code/keys/alice');
    expect(carol.secret).toBe('claude-code/keys/carol');
    expect(alice.account).not.toBe(carol.account);
    expect(alice.account).toMatch(/^default:[0-9a-f]{12}$/);
  });

  it('"user": "os" with no user that can be told: a ConfigError before any cache is read', async () => {
    expect(() => cacheSlot(testProfile(), noUser)).toThrow(ConfigError);
    const w = world();
    await getKey(w.deps('claude-1'));
    let reads = 0;
    const cache = { ...w.cache, read: async (account: string) => (reads++, w.cache.read(account)) };
    await expect(getKey(w.deps('claude-2', { cache, osUser: noUser }))).rejects.toThrow(ConfigError);
    expect(reads).toBe(0);
  });

  it('"user": "store": the slot is the template\'s (a warm get asks the store nothing); an entry must name a secret the template resolves to', () => {
    const profile = storeProfile();
    const slot = cacheSlot(profile, noUser);
    expect(slot).toEqual({ account: cacheAccount(profile, noUser), secret: undefined });
    expect(entryBelongs(slot, profile, 'claude-code/keys/alice')).toBe(true);
    expect(entryBelongs(slot, profile, 'claude-code/other/alice')).toBe(false);
    expect(entryBelongs(slot, profile, 'claude-code/keys/')).toBe(false);
    expect(entryBelongs(slot, profile, 'claude-code/keys/a/b')).toBe(false);
    const twice = { ...profile, secret: 'keys/{user}/api-{user}' };
    expect(entryBelongs(cacheSlot(twice, noUser), twice, 'keys/bob/api-bob')).toBe(true);
    expect(entryBelongs(cacheSlot(twice, noUser), twice, 'keys/bob/api-eve')).toBe(false);
  });

  it('an entry in the slot that was read from another secret is not served: the store is read', async () => {
    const w = world();
    const slot = cacheSlot(testProfile(), () => 'alice');
    w.cache.data.set(
      slot.account,
      serializeEntry({ key: 'sk-test-carols', version: 'v9', secret: 'claude-code/keys/carol', fetchedAt: w.clock.now }),
    );
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'store', secret: 'claude-code/keys/alice' });
    expect(w.store.reads).toBe(1);
  });
});

describe('the cache account', () => {
  it('an unchanged profile keeps its account across versions (an upgrade keeps every cached key)', () => {
    expect(cacheAccount(testProfile(), () => 'alice')).toBe('default:ff5655540adf');
    expect(cacheAccount(storeProfile())).toBe('default:c0cb774566bf');
  });

  it('an `oidc` profile: one account per sign-in configuration, the refresh token next to it', () => {
    const oidc = (clientId: string): Profile => ({
      ...testProfile(),
      secret: 'https://idp.test',
      oidc: { issuer: 'https://idp.test', clientId },
    });
    expect(cacheSlot(oidc('a'), noUser)).toEqual({ account: expect.stringMatching(/^default:[0-9a-f]{12}$/), secret: undefined });
    expect(cacheAccount(oidc('a'))).not.toBe(cacheAccount(oidc('b')));
    expect(refreshTokenAccount(oidc('a'))).toBe(`${cacheAccount(oidc('a'))}:refresh`);
  });

  it('an OS login name that cannot be in a secret name: a ConfigError that says where the name came from', () => {
    expect(() => cacheSlot(testProfile(), () => 'a/b')).toThrow(
      'the user name "a/b" from the OS login cannot be used in the secret name "claude-code/keys/{user}": it contains a path separator',
    );
  });

  it('"user": "os" needs the OS user to be named; "cache clear" takes an unknown user as no account', () => {
    expect(() => cacheAccount(testProfile())).toThrow('the cache account of a "user": "os" profile needs the OS user');
    expect(knownCacheAccount(testProfile(), noUser)).toBeUndefined();
    expect(knownCacheAccount(testProfile(), () => 'alice')).toBe(cacheAccount(testProfile(), () => 'alice'));
    const broken = () => {
      throw new Error('a bug');
    };
    expect(() => knownCacheAccount(testProfile(), broken)).toThrow('a bug');
  });

  it('"user": "store" with a fixed secret name: only an entry of that secret belongs', () => {
    const fixed = { ...storeProfile(), secret: 'claude-code/keys/team' };
    const slot = cacheSlot(fixed, noUser);
    expect(entryBelongs(slot, fixed, 'claude-code/keys/team')).toBe(true);
    expect(entryBelongs(slot, fixed, 'claude-code/keys/other')).toBe(false);
  });
});

describe('the file cache in a relative folder', () => {
  it('is never read, even when the file is there: a repository would choose the key', async () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-relative-'));
    try {
      fs.mkdirSync(path.join(repo, '.cache', 'keybroker', 'keys'), { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(repo, '.cache', 'keybroker', 'keys', `${sha256Hex('default:x').slice(0, 24)}.json`), '{"planted":true}', {
        mode: 0o600,
      });
      // The same folder named relative to the working directory (a worker cannot chdir).
      const keys = path.relative(process.cwd(), path.join(repo, '.cache', 'keybroker', 'keys'));
      await expect(fileCache(keys).read('default:x')).rejects.toThrow(CacheUnavailable);
      await expect(fileCache(keys).read('default:x')).rejects.toThrow(/is not an absolute path/);
      await expect(fileCache(keys).write('default:x', 'data')).rejects.toThrow(/is not an absolute path/);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});
