// What `get` does when a piece around it cannot help: a cache that cannot be read or written, a store
// failure another process met, a background refresh that cannot start or finish. The broker core with
// fakes (test/broker/fakes.ts). No I/O.
import { describe, expect, it } from 'vitest';
import { assessFreshness, fetchFromStore, getKey, profileFreshness, refreshAhead } from '../../src/broker/broker.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import type { Lock } from '../../src/broker/lock.ts';
import type { Profile } from '../../src/config/config.ts';
import {
  AccessDenied,
  CacheUnavailable,
  ConfigError,
  NotAuthenticated,
  SecretNotFound,
  StoreUnreachable,
  UnusableKey,
} from '../../src/kernel/errors.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

const account = cacheAccount(testProfile(), () => 'alice');
const locked = () => new CacheUnavailable('the keychain is locked', 'unlock it');

describe('a cache that cannot be used', () => {
  it('one that cannot be read is one warning, and the store answers (the wait for the lock reads it again quietly)', async () => {
    const w = world();
    w.cache.read = async () => {
      throw locked();
    };
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'store' });
    expect(w.warnings).toEqual(['keybroker: the keychain is locked: unlock it']);
  });

  it('a required one that cannot be read fails the get with its error', async () => {
    const w = world();
    w.cache.read = async () => {
      throw locked();
    };
    await expect(getKey(w.deps('claude-1', { cache: { ...w.cache, required: true } }))).rejects.toBeInstanceOf(CacheUnavailable);
    expect(w.store.reads).toBe(0);
  });

  it('a read that fails with anything but CacheUnavailable (a bug) is not papered over', async () => {
    const w = world();
    w.cache.read = async () => {
      throw new TypeError('not a cache failure');
    };
    await expect(getKey(w.deps('claude-1'))).rejects.toThrow('not a cache failure');
  });

  it('a key the cache cannot keep is served, with a warning that it was not cached', async () => {
    const w = world();
    w.cache.write = async () => {
      throw locked();
    };
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'store' });
    expect(w.warnings).toEqual(['keybroker: the key was not cached: the keychain is locked: unlock it']);
  });

  it('a required cache that cannot keep the key fails the get, and so does a write that fails with a bug', async () => {
    const w = world();
    w.cache.write = async () => {
      throw locked();
    };
    await expect(getKey(w.deps('claude-1', { cache: { ...w.cache, required: true } }))).rejects.toBeInstanceOf(CacheUnavailable);
    w.cache.write = async () => {
      throw new TypeError('not a cache failure');
    };
    await expect(getKey(w.deps('claude-1'))).rejects.toThrow('not a cache failure');
  });
});

describe('a store failure another process met, shared with this call', () => {
  it.each([
    ['StoreUnreachable', StoreUnreachable],
    ['NotAuthenticated', NotAuthenticated],
    ['AccessDenied', AccessDenied],
    ['SecretNotFound', SecretNotFound],
    ['UnusableKey', UnusableKey],
    ['ConfigError', ConfigError],
    ['a kind this version does not know', StoreUnreachable],
  ])('raised again as %s with its message and fix, without reading the store', async (kind, type) => {
    const w = world();
    w.state.recordStoreFailure(account, { at: w.clock.now, kind, message: 'the store said no', fix: 'do the thing' });
    const error = await getKey(w.deps('claude-1')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect((error as StoreUnreachable).line()).toBe('the store said no: do the thing');
    expect(w.store.reads).toBe(0);
  });

  it('a failure this call meets is recorded for the waiters with its kind, message and fix', async () => {
    const w = world();
    w.store.fail = () => new NotAuthenticated('not logged in to AWS', "run 'aws sso login'");
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(NotAuthenticated);
    expect(w.state.lastStoreFailure(account)).toEqual({
      at: w.clock.now,
      kind: 'NotAuthenticated',
      message: 'not logged in to AWS',
      fix: "run 'aws sso login'",
    });
  });

  it('a failure that is no keybroker error (a bug) is not recorded for the waiters', async () => {
    const w = world();
    w.store.fail = () => new TypeError('not a store failure');
    await expect(getKey(w.deps('claude-1'))).rejects.toThrow('not a store failure');
    expect(w.state.lastStoreFailure(account)).toBeUndefined();
  });

  it('a store read that succeeds clears a failure recorded before this call began', async () => {
    const w = world();
    w.state.recordStoreFailure(account, { at: w.clock.now - MINUTE, kind: 'StoreUnreachable', message: 'down', fix: 'wait' });
    expect((await getKey(w.deps('claude-1'))).from).toBe('store');
    expect(w.state.lastStoreFailure(account)).toBeUndefined();
  });
});

describe('refresh-ahead that cannot start or finish', () => {
  it('a background refresh that cannot be started leaves the get served from the cache, said in the debug output', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 25 * MINUTE;
    const debug: string[] = [];
    const deps = w.deps('claude-2', {
      startBackgroundRefresh: () => {
        throw new Error('spawn failed');
      },
      debug: (line) => void debug.push(line),
    });
    expect(await getKey(deps)).toMatchObject({ key: 'sk-test-one', from: 'cache' });
    expect(debug).toEqual([
      'the cached key is nearing refreshAfter: refreshing it in the background',
      'could not start the background refresh: spawn failed',
    ]);
  });

  it('the background half does nothing while another process holds the lock', async () => {
    const w = world();
    const held: Lock = { acquire: async () => undefined };
    expect(await refreshAhead(w.deps(undefined, { lock: held }))).toBe('not needed');
    expect(w.store.reads).toBe(0);
  });

  it('the background half fails quietly with the store down, keeping the cached key', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 25 * MINUTE;
    w.store.fail = () => new StoreUnreachable('down', 'wait');
    const cached = w.cache.data.get(account);
    const debug: string[] = [];
    expect(await refreshAhead(w.deps(undefined, { debug: (line) => void debug.push(line) }))).toBe('failed');
    expect(debug).toEqual(['background refresh failed: down']);
    expect(w.cache.data.get(account)).toBe(cached);
    expect(w.warnings).toEqual([]);
  });

  it('the background half does not cache a key the store holds that has already expired', async () => {
    const w = world();
    w.store.rotate('sk-test-old', 'v0', { expires_at: new Date(w.clock.now - MINUTE).toISOString() });
    expect(await refreshAhead(w.deps())).toBe('failed');
    expect(w.cache.data.has(account)).toBe(false);
  });

  it('the background half refreshes an empty cache, and a cached key read "in the future" (the clock went back)', async () => {
    const w = world();
    expect(await refreshAhead(w.deps())).toBe('refreshed');
    w.cache.data.set(
      account,
      serializeEntry({ key: 'sk-test-one', version: 'v1', secret: 'claude-code/keys/alice', fetchedAt: w.clock.now + MINUTE }),
    );
    w.store.rotate('sk-test-two', 'v2');
    expect(await refreshAhead(w.deps())).toBe('refreshed');
    expect(JSON.parse(w.cache.data.get(account)!).key).toBe('sk-test-two');
  });
});

describe('reading the store', () => {
  it('a profile with user "store" reads the secret of the identity the store reports, not the OS login', async () => {
    const w = world({ ...testProfile(), user: 'store' });
    const entry = await fetchFromStore(w.deps(undefined, { osUser: () => 'bob' }));
    expect(entry.secret).toBe('claude-code/keys/alice');
  });

  it("a key expires at the earlier of the value's expires_at and the store's own expiry", async () => {
    const w = world();
    const soon = new Date(w.clock.now + 60 * MINUTE);
    const later = new Date(w.clock.now + 120 * MINUTE);
    w.store.value = { value: JSON.stringify({ api_key: 'sk-test-one', expires_at: later.toISOString() }), version: 'v1', expiresAt: soon };
    expect((await fetchFromStore(w.deps())).expiresAt).toBe(soon.getTime());
    w.store.value = { value: JSON.stringify({ api_key: 'sk-test-one', expires_at: soon.toISOString() }), version: 'v1', expiresAt: later };
    expect((await fetchFromStore(w.deps())).expiresAt).toBe(soon.getTime());
    w.store.value = { value: 'sk-test-one', version: 'v1' };
    expect(await fetchFromStore(w.deps())).not.toHaveProperty('expiresAt');
  });
});

describe('freshness edges', () => {
  it('a key read this very millisecond is fresh', () => {
    const entry = { key: 'sk-test-a', version: 'v1', secret: 's', fetchedAt: 1_000_000 };
    expect(assessFreshness(entry, entry.fetchedAt, 30 * MINUTE, 5 * MINUTE)).toBe('fresh');
  });

  it("an SSO token is judged with 10 s of clock slack, a store's key with 60 s", () => {
    const now = 1_000_000;
    const entry = { key: 'sk-test-a', version: 'v1', secret: 's', fetchedAt: now - 1_000, expiresAt: now + 30_000 };
    const sso: Profile = { ...testProfile(), oidc: { issuer: 'https://idp.test', clientId: 'keybroker-test' } };
    expect(profileFreshness(entry, now, sso, 5_000)).toBe('fresh');
    expect(profileFreshness(entry, now, testProfile(), 5_000)).toBe('expired');
  });

  it("get judges an SSO profile's token with the 10 s slack without being told", async () => {
    const sso: Profile = { ...testProfile(), secret: 'https://idp.test', oidc: { issuer: 'https://idp.test', clientId: 'keybroker-test' } };
    const w = world(sso, 5_000);
    let refreshes = 0;
    const fetchEntry = async () => {
      refreshes++;
      return {
        key: 'eyJ.test-token.sig',
        version: 'jti',
        secret: 'https://idp.test',
        fetchedAt: w.clock.now,
        expiresAt: w.clock.now + 30_000,
      };
    };
    expect((await getKey(w.deps('a', { fetchEntry }))).from).toBe('store');
    expect((await getKey(w.deps('b', { fetchEntry }))).from).toBe('cache');
    expect(refreshes).toBe(1);
  });

  it('with a 20 s caller TTL, a repeat 3 s before it ends is a 401 re-run: the tolerance is a tenth of the TTL', async () => {
    const w = world(testProfile(), 20_000);
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 17_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'store' });
    w.clock.now += 19_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'cache' });
  });
});
