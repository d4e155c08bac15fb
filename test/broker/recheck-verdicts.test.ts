// The remembered verdict of a 401 re-check, and what its messages name. The broker core with fakes
// (test/broker/fakes.ts). No I/O.
import { describe, expect, it } from 'vitest';
import { RECHECK_MIN_INTERVAL_MS, fetchFromStore, getKey, lockWaitMs, verifyRefusal } from '../../src/broker/broker.ts';
import type { Lock } from '../../src/broker/lock.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { memoryRotationState } from '../../src/broker/rotation-state.ts';
import { ConfigError, type KeyRejected, UnusableKey } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

describe('a remembered verdict', () => {
  it('is not used to serve a cached key that has expired since: the store is asked, and its expired key refused', async () => {
    const w = world();
    const start = w.clock.now;
    // Expired (within the 60 s slack of its expires_at) from 5 s after the first get on.
    w.store.rotate('sk-test-one', 'v1', { expires_at: new Date(start + 65_000).toISOString() });
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'store' });
    w.clock.now += 10_000;
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(UnusableKey);
    expect(w.store.reads).toBe(3);
  });

  it('says in the debug output how long ago the re-check was and what it found', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    await getKey(w.deps('claude-1'));
    w.clock.now += 3_000;
    const lines: string[] = [];
    expect(await getKey(w.deps('claude-1', { debug: (line) => void lines.push(line) }))).toMatchObject({ from: 'cache' });
    expect(lines).toContain('re-checked 3s ago (same); not asking the store again yet');
  });

  it('names the gateway that rejected the key, not the one configured now', async () => {
    const w = world();
    const account = cacheAccount(testProfile(), () => 'alice');
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    w.state.recordRecheck(account, {
      at: w.clock.now,
      fingerprint: fingerprint('sk-test-one'),
      verdict: 'rejected',
      gateway: 'http://old-gateway.test',
    });
    w.clock.now += 1_000;
    const error = (await getKey(w.deps('claude-1')).catch((e: unknown) => e)) as KeyRejected;
    expect(error.line()).toMatch(/^the gateway at http:\/\/old-gateway\.test rejects your key/);
  });
});

describe('a verdict that does not answer this refusal', () => {
  const account = cacheAccount(testProfile(), () => 'alice');

  it('is one about another key: the newer key refused in its turn is checked with the store and the gateway', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 1_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'store' });
    w.clock.now += 1_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'store' });
    expect(w.store.reads).toBe(3);
    expect(w.gateway.calls).toBe(1);
  });

  it('is one stamped in the future (the clock was set back): the store is asked', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    w.state.recordRecheck(account, { at: w.clock.now + MINUTE, fingerprint: fingerprint('sk-test-one'), verdict: 'same' });
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ from: 'store' });
    expect(w.store.reads).toBe(2);
  });

  it('is one exactly the interval (15 s) old: the store is asked again', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    await getKey(w.deps('claude-1'));
    w.clock.now += RECHECK_MIN_INTERVAL_MS;
    // The caller was handed the key 15 s ago, within its TTL: a refusal again.
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ from: 'store' });
    expect(w.store.reads).toBe(3);
  });

  it('is one recorded while this caller waited for the lock in vain: without the lock the cache may not hold what it found, so the store is read', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    const monotonic = { now: 0 };
    const busy: Lock = {
      acquire: async (_name, waitMs) => {
        // The holder, another process, re-checks the same key meanwhile.
        w.state.recordRecheck(account, { at: w.clock.now, fingerprint: fingerprint('sk-test-one'), verdict: 'same' });
        monotonic.now += waitMs;
        return undefined;
      },
    };
    expect(await getKey(w.deps('claude-1', { lock: busy, monotonicNow: () => monotonic.now }))).toMatchObject({ from: 'store' });
    expect(w.store.reads).toBe(2);
  });
});

describe('a refused caller waiting for the lock', () => {
  it('takes the newer key another process put in the cache meanwhile, without waiting the wait out or reading the store', async () => {
    const w = world();
    const account = cacheAccount(testProfile(), () => 'alice');
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    const monotonic = { now: 0 };
    const newer = { key: 'sk-test-two', version: 'v2', secret: 'claude-code/keys/alice', fetchedAt: w.clock.now };
    const busy: Lock = {
      acquire: async (_name, waitMs) => {
        // The holder, another process, caches the newer key it read.
        w.cache.data.set(account, serializeEntry(newer));
        monotonic.now += waitMs;
        return undefined;
      },
    };
    expect(await getKey(w.deps('claude-1', { lock: busy, monotonicNow: () => monotonic.now }))).toMatchObject({
      key: 'sk-test-two',
      from: 'cache',
    });
    expect(monotonic.now).toBeLessThan(lockWaitMs(testProfile(), 0));
    expect(w.store.reads).toBe(1);
  });
});

describe('messages', () => {
  it('a rejection by a gateway whose address is not known says "the gateway"', async () => {
    const deps = {
      now: () => 0,
      state: memoryRotationState(),
      checkWithGateway: async () => 'rejected' as const,
      gatewayName: undefined,
      debug: () => {},
    };
    const entry = { key: 'sk-test-one', version: 'v1', secret: 's', fetchedAt: 0 };
    const error = (await verifyRefusal(deps, 'account', fingerprint('sk-test-one'), entry).catch((e: unknown) => e)) as KeyRejected;
    expect(error.line()).toMatch(/^the gateway rejects your key \(sha256:[0-9a-f]{8}\) and the store holds no newer one: it was revoked/);
  });

  it('a user name from the store that cannot be part of the secret name names the store identity as its source', async () => {
    const w = world({ ...testProfile(), user: 'store' });
    const provider = w.store.provider();
    provider.whoami = async () => ({ user: 'a/b', principal: 'a/b' });
    const error = await fetchFromStore(w.deps(undefined, { openProvider: async () => provider })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('the user name "a/b" from the store identity (the fake store) cannot be used');
  });
});
