// The broker core's rules with a fake clock, store, cache and lock: freshness, 401 re-checks,
// stale-if-error, single flight of successes and failures. No I/O.
import { describe, expect, it } from 'vitest';
import {
  CLOCK_SLACK_MS,
  RECHECK_MIN_INTERVAL_MS,
  REFRESH_AHEAD_EVERY_MS,
  assessFreshness,
  expiryMarginMs,
  getKey,
  refreshAhead,
  verifyRefusal,
  type BrokerDeps,
} from '../../src/broker/broker.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { memoryRotationState } from '../../src/broker/rotation-state.ts';
import { fingerprint } from '../../src/secret/value.ts';
import type { GatewayVerdict } from '../../src/gateway/key-check.ts';
import { KeyRejected, NotAuthenticated, StoreUnreachable, UnusableKey } from '../../src/kernel/errors.ts';
import { storeCallCeilingMs } from '../../src/kernel/retry.ts';
import type { Lock } from '../../src/broker/lock.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

const TTL = 5 * MINUTE;
const down = () => new StoreUnreachable('cannot reach the fake store (ECONNREFUSED)', 'check your network');

describe('freshness', () => {
  const base = { key: 'sk-test-a', version: 'v1', secret: 's', fetchedAt: 1_000_000 };
  it('is fresh while younger than refreshAfter and stale from then on', () => {
    expect(assessFreshness(base, base.fetchedAt + 30 * MINUTE - 1, 30 * MINUTE, TTL)).toBe('fresh');
    expect(assessFreshness(base, base.fetchedAt + 30 * MINUTE, 30 * MINUTE, TTL)).toBe('stale');
  });
  it('turns stale two caller TTLs plus a minute before expires_at, and expired a minute before it', () => {
    const expiresAt = base.fetchedAt + 60 * MINUTE;
    const entry = { ...base, expiresAt };
    const margin = expiryMarginMs(TTL);
    expect(margin).toBe(2 * TTL + 60_000);
    expect(assessFreshness(entry, expiresAt - margin - 1, 24 * 60 * MINUTE, TTL)).toBe('fresh');
    expect(assessFreshness(entry, expiresAt - margin, 24 * 60 * MINUTE, TTL)).toBe('stale');
    expect(assessFreshness(entry, expiresAt - CLOCK_SLACK_MS - 1, 24 * 60 * MINUTE, TTL)).toBe('stale');
    expect(assessFreshness(entry, expiresAt - CLOCK_SLACK_MS, 24 * 60 * MINUTE, TTL)).toBe('expired');
  });
  it('treats a fetch time in the future (the clock went back) as stale, not fresh', () => {
    expect(assessFreshness(base, base.fetchedAt - 1, 30 * MINUTE, TTL)).toBe('stale');
  });
  it('follows a longer Claude Code TTL with a wider margin', () => {
    const entry = { ...base, expiresAt: base.fetchedAt + 60 * MINUTE };
    const at = entry.expiresAt - 15 * MINUTE;
    expect(assessFreshness(entry, at, 24 * 60 * MINUTE, 5 * MINUTE)).toBe('fresh');
    expect(assessFreshness(entry, at, 24 * 60 * MINUTE, 10 * MINUTE)).toBe('stale');
  });
});

describe('getKey', () => {
  it('serves a fresh cached key without opening the store', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 10 * MINUTE;
    const served = await getKey(w.deps('claude-2'));
    expect(served).toMatchObject({ key: 'sk-test-one', from: 'cache' });
    expect(w.store.reads).toBe(1);
  });

  it('picks up a rotated key once the cached one is older than refreshAfter', async () => {
    const w = world(testProfile({ refreshAfterMs: 15 * MINUTE }));
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 14 * MINUTE;
    expect((await getKey(w.deps('claude-1'))).key).toBe('sk-test-one');
    w.clock.now += 1 * MINUTE;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', version: 'v2', from: 'store' });
  });

  it('re-reads the store when the same caller asks again within its TTL (it just got a 401)', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 2 * MINUTE;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'store' });
    expect(w.store.reads).toBe(2);
    expect(w.gateway.calls).toBe(0);
  });

  it('serves the cache to a caller whose repeat is its regular re-run at the end of its TTL', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += TTL;
    expect((await getKey(w.deps('claude-1'))).from).toBe('cache');
    expect(w.store.reads).toBe(1);
  });

  // Claude Code's re-run at the TTL's end may come a little early (timers, a busy machine): up to
  // min(5 s, TTL / 10) before it still counts as the regular re-run; anything earlier is a 401.
  it('serves the cache to a caller whose regular re-run comes a few seconds before its TTL ends', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += TTL - 3_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'cache' });
    expect(w.store.reads).toBe(1);
  });

  it('re-checks the store for a repeat 10 s before the TTL ends: that is well inside it, a refusal', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += TTL - 10_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'store' });
    expect(w.store.reads).toBe(2);
  });

  it("serves the cache to a second caller within the first one's TTL", async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 1_000;
    expect((await getKey(w.deps('claude-2'))).from).toBe('cache');
    expect(w.store.reads).toBe(1);
  });

  it('serves the newer cached key, without the store, to a caller that was handed the old one', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += MINUTE;
    await getKey(w.deps('claude-2'), { recheck: true });
    w.clock.now += MINUTE;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-two', from: 'cache' });
    expect(w.store.reads).toBe(2);
  });

  it('fails with "revoked, no newer key" when the store holds the refused key and the gateway rejects it', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.gateway.verdict = 'rejected';
    w.clock.now += MINUTE;
    const error = await getKey(w.deps('claude-1')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyRejected);
    expect((error as KeyRejected).line()).toMatch(
      /rejects your key \(sha256:[0-9a-f]{8}\) and the store holds no newer one: it was revoked: ask your admin/,
    );
    expect((error as KeyRejected).line()).not.toContain('sk-test-one');
  });

  it('rate-limits re-checks: a repeat within the interval gets the last verdict without store or gateway', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.gateway.verdict = 'rejected';
    for (let i = 0; i < 5; i++) {
      w.clock.now += 1_000;
      await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(KeyRejected);
    }
    expect(w.store.reads).toBe(2);
    expect(w.gateway.calls).toBe(1);
    w.clock.now += RECHECK_MIN_INTERVAL_MS;
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(KeyRejected);
    expect(w.store.reads).toBe(3);
  });

  it('says when the store was asked when a repeat within the interval gets the remembered "revoked"', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.gateway.verdict = 'rejected';
    w.clock.now += 1_000;
    await expect(getKey(w.deps('claude-1'))).rejects.toThrow(/and the store holds no newer one: it was revoked/);
    w.clock.now += 3_000;
    const remembered = (await getKey(w.deps('claude-1')).catch((e: unknown) => e)) as KeyRejected;
    expect(remembered.line()).toMatch(/and the store held no newer one when asked 3s ago: it was revoked: .*keybroker get --recheck/);
    expect(w.store.reads).toBe(2);
  });

  it('an explicit recheck within the interval reads the store and serves the key an admin just stored', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.gateway.verdict = 'rejected';
    w.clock.now += 1_000;
    await expect(getKey(w.deps('claude-1'), { recheck: true })).rejects.toBeInstanceOf(KeyRejected);
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 1_000;
    expect(await getKey(w.deps('claude-1'), { recheck: true })).toMatchObject({ key: 'sk-test-two', from: 'store' });
    expect(w.store.reads).toBe(3);
  });

  it('serves the same key when the gateway still accepts it (a passing 401), and does not re-check again at once', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += MINUTE;
    expect((await getKey(w.deps('claude-1'))).key).toBe('sk-test-one');
    w.clock.now += 1_000;
    expect((await getKey(w.deps('claude-1'))).from).toBe('cache');
    expect(w.store.reads).toBe(2);
    expect(w.gateway.calls).toBe(1);
  });

  it('without a caller identity, serves the fresh cache (freshness alone brings a rotated key)', async () => {
    const w = world();
    await getKey(w.deps());
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 1_000;
    expect((await getKey(w.deps())).key).toBe('sk-test-one');
  });

  it('serves a stale but unexpired cached key with one warning while the store is down', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 45 * MINUTE;
    w.store.fail = down;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'stale-cache' });
    expect(w.warnings).toHaveLength(1);
    expect(w.warnings[0]).toMatch(/cannot reach the fake store.*serving the cached key read 45m ago/);
  });

  it("fails with the store's error when the store is down and nothing is cached", async () => {
    const w = world();
    w.store.fail = down;
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(StoreUnreachable);
  });

  it('does not paper over a logged-out store with the cache', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 45 * MINUTE;
    w.store.fail = () => new NotAuthenticated('not logged in to AWS', "run 'aws sso login'");
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(NotAuthenticated);
  });

  it('never serves a key within a minute of its expires_at, even with the store down', async () => {
    const w = world();
    w.store.rotate('sk-test-one', 'v1', { expires_at: new Date(w.clock.now + 60 * MINUTE).toISOString() });
    await getKey(w.deps('claude-1'));
    w.store.fail = down;
    w.clock.now += 59 * MINUTE;
    await expect(getKey(w.deps('claude-1'))).rejects.toBeInstanceOf(StoreUnreachable);
  });

  it('refreshes a key nearing expires_at before Claude Code could be holding it past expiry', async () => {
    const w = world(testProfile({ refreshAfterMs: 24 * 60 * MINUTE }));
    const expiresAt = w.clock.now + 60 * MINUTE;
    w.store.rotate('sk-test-one', 'v1', { expires_at: new Date(expiresAt).toISOString() });
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now = expiresAt - expiryMarginMs(TTL) - 1;
    expect((await getKey(w.deps('claude-2'))).key).toBe('sk-test-one');
    w.clock.now += 1;
    expect((await getKey(w.deps('claude-3'))).key).toBe('sk-test-two');
  });

  it('re-reads the store when the clock went back behind the cached fetch time', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now -= 10 * MINUTE;
    expect((await getKey(w.deps('claude-2'))).from).toBe('store');
  });

  it("replaces a corrupt cached entry with the store's key", async () => {
    const w = world();
    w.cache.data.set(
      cacheAccount(testProfile(), () => 'alice'),
      '{"v":1,"key":',
    );
    expect((await getKey(w.deps('claude-1'))).from).toBe('store');
    expect(JSON.parse(w.cache.data.get(cacheAccount(testProfile(), () => 'alice'))!).key).toBe('sk-test-one');
  });

  it('lets many concurrent callers on a cold cache share one store read', async () => {
    const w = world();
    w.store.during = () => new Promise((resolve) => setTimeout(resolve, 20));
    const served = await Promise.all(Array.from({ length: 50 }, (_, i) => getKey(w.deps(`claude-${i}`))));
    expect(w.store.reads).toBe(1);
    expect(new Set(served.map((s) => s.key))).toEqual(new Set(['sk-test-one']));
    // The one that read the store says so; the others were handed what it cached.
    expect(served.filter((s) => s.from === 'store')).toHaveLength(1);
    expect(served.filter((s) => s.from === 'cache')).toHaveLength(49);
  });

  it("two 401 re-runs at once: the second, after the lock, gets the first one's verdict without the store or the gateway", async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += MINUTE;
    w.store.during = () => new Promise((resolve) => setTimeout(resolve, 20));
    const served = await Promise.all([getKey(w.deps('claude-1')), getKey(w.deps('claude-1'))]);
    expect(served.map((s) => [s.key, s.from])).toEqual([
      ['sk-test-one', 'store'],
      ['sk-test-one', 'cache'],
    ]);
    expect(w.store.reads).toBe(2);
    expect(w.gateway.calls).toBe(1);
  });

  it('a caller handed an older key than the cache holds gets the cached one without waiting for the refresh lock', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += MINUTE;
    await getKey(w.deps('claude-2'), { recheck: true });
    // Past the re-check's interval: its verdict cannot answer for the cache.
    w.clock.now += MINUTE;
    let locks = 0;
    const counted: Lock = { acquire: async () => (locks++, undefined) };
    expect(await getKey(w.deps('claude-1', { lock: counted }))).toMatchObject({ key: 'sk-test-two', from: 'cache' });
    expect(locks).toBe(0);
  });

  it('a key served "in the future" (the clock was set back since) is no sign of a 401: the fresh cache is served', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now -= MINUTE;
    w.cache.data.set(
      cacheAccount(testProfile(), () => 'alice'),
      JSON.stringify({ ...JSON.parse(w.cache.data.get(cacheAccount(testProfile(), () => 'alice'))!), fetchedAt: w.clock.now }),
    );
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'cache' });
    expect(w.store.reads).toBe(1);
  });

  it('a repeat exactly the tolerance (5 s) before the TTL ends is still the regular re-run', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += TTL - 5_000;
    expect(await getKey(w.deps('claude-1'))).toMatchObject({ key: 'sk-test-one', from: 'cache' });
  });

  it("fails with UnusableKey, naming the secret and when, when the store's key has already expired", async () => {
    const w = world();
    const expired = new Date(w.clock.now - MINUTE);
    w.store.rotate('sk-test-one', 'v1', { expires_at: expired.toISOString() });
    const error = (await getKey(w.deps('claude-1')).catch((e: unknown) => e)) as UnusableKey;
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.line()).toBe(
      `the key in secret "claude-code/keys/alice" expired at ${expired.toISOString()} (or expires within a minute): ask your admin to rotate it (keybroker admin rotate)`,
    );
    expect(w.cache.data.size).toBe(0);
  });

  it('hands a waiter the failure its lock holder met instead of reading the store again', async () => {
    const w = world();
    w.store.fail = down;
    w.store.during = () => new Promise((resolve) => setTimeout(resolve, 20));
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => getKey(w.deps(`claude-${i}`))));
    expect(results.every((r) => r.status === 'rejected' && r.reason instanceof StoreUnreachable)).toBe(true);
    expect(w.store.reads).toBe(1);
  });
});

describe('verifying a refusal (the 401 path), alone', () => {
  const at = Date.parse('2026-11-27T09:00:00Z');
  const refused = fingerprint('sk-test-one');
  const entry = (key: string) => ({ key, version: 'v2', secret: 'claude-code/keys/alice', fetchedAt: at });

  function refusal(verdict: GatewayVerdict | undefined, gatewayName: string | undefined) {
    const state = memoryRotationState();
    const asked: string[] = [];
    const checkWithGateway = verdict
      ? async (key: string) => {
          asked.push(key);
          return verdict;
        }
      : undefined;
    const deps = { now: () => at, state, checkWithGateway, gatewayName, debug: () => {} };
    return { state, asked, verify: (key: string) => verifyRefusal(deps, 'account', refused, entry(key)) };
  }

  it('a newer key in the store is the answer: recorded as "newer", the gateway not asked', async () => {
    const { state, asked, verify } = refusal('rejected', 'http://gateway.test');
    await verify('sk-test-two');
    expect(asked).toEqual([]);
    expect(state.lastRecheck('account')).toEqual({ at, fingerprint: refused, verdict: 'newer' });
  });

  it('the refused key, still accepted by the gateway: served, recorded as "same" with the gateway asked', async () => {
    const { state, asked, verify } = refusal('accepted', 'http://gateway.test');
    await verify('sk-test-one');
    expect(asked).toEqual(['sk-test-one']);
    expect(state.lastRecheck('account')).toEqual({ at, fingerprint: refused, verdict: 'same', gateway: 'http://gateway.test' });
  });

  it('the refused key, rejected by the gateway: KeyRejected naming the gateway, recorded as "rejected"', async () => {
    const { state, verify } = refusal('rejected', 'http://gateway.test');
    const error = (await verify('sk-test-one').catch((e: unknown) => e)) as KeyRejected;
    expect(error).toBeInstanceOf(KeyRejected);
    expect(error.line()).toMatch(
      /^the gateway at http:\/\/gateway\.test rejects your key \(sha256:[0-9a-f]{8}\) and the store holds no newer one/,
    );
    expect(state.lastRecheck('account')).toEqual({ at, fingerprint: refused, verdict: 'rejected', gateway: 'http://gateway.test' });
  });

  it('with no gateway known, the refused key is served and recorded as "same" without a gateway', async () => {
    const { state, verify } = refusal(undefined, undefined);
    await verify('sk-test-one');
    expect(state.lastRecheck('account')).toEqual({ at, fingerprint: refused, verdict: 'same' });
  });
});

describe('what --debug says', () => {
  function debugOf(w: ReturnType<typeof world>, overrides: Partial<BrokerDeps> = {}, caller = 'claude-1') {
    const lines: string[] = [];
    return { lines, deps: w.deps(caller, { debug: (line) => void lines.push(line), ...overrides }) };
  }
  const account = cacheAccount(testProfile(), () => 'alice');
  const entry = (key: string, secret = 'claude-code/keys/alice') => serializeEntry({ key, version: 'v0', secret, fetchedAt: Date.now() });

  it.each([
    ['nothing cached', undefined, undefined],
    ['an entry that is not readable', '{"v":1,"key":', 'the cached entry is not readable; it will be replaced'],
    ['a key Claude Code would refuse', entry('sk-test-a b'), 'the cached key is not one Claude Code accepts; it will be replaced'],
    [
      "another user's entry",
      entry('sk-test-bob', 'claude-code/keys/bob'),
      'the cached entry was read from secret "claude-code/keys/bob", not this user\'s; it will be replaced',
    ],
  ])('why the cache was not used: %s', async (_what, cached, line) => {
    const w = world();
    if (cached !== undefined) w.cache.data.set(account, cached);
    const { lines, deps } = debugOf(w);
    expect((await getKey(deps)).from).toBe('store');
    expect(lines.filter((l) => l.includes('cached'))).toEqual(line ? [line] : []);
  });

  it('that it took the refresh lock, or that it did not in time and reads the store without it', async () => {
    const w = world();
    const took = debugOf(w);
    await getKey(took.deps);
    expect(took.lines).toContain('took the refresh lock');
    expect(took.lines).not.toContain('did not get the refresh lock in time; reading the store without it');
    w.cache.data.clear();
    const never: Lock = {
      acquire: async (_name, waitMs) => {
        w.clock.now += waitMs;
        return undefined;
      },
    };
    const late = debugOf(w, { lock: never });
    await getKey(late.deps);
    expect(late.lines).toContain('did not get the refresh lock in time; reading the store without it');
    expect(late.lines).not.toContain('took the refresh lock');
  });

  it("that it shares another process's store failure, not that it missed the lock", async () => {
    const w = world();
    w.state.recordStoreFailure(account, { at: w.clock.now, kind: 'StoreUnreachable', message: 'down', fix: 'wait' });
    const { lines, deps } = debugOf(w);
    await expect(getKey(deps)).rejects.toBeInstanceOf(StoreUnreachable);
    expect(lines).toEqual(["another process's store read failed 0ms ago: sharing its failure"]);
  });

  it('who was refused, and for --recheck without a caller identity "the caller"', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += MINUTE;
    const refused = `it was refused key ${fingerprint('sk-test-one')}; re-checking`;
    const rerun = debugOf(w);
    await getKey(rerun.deps);
    expect(rerun.lines).toContain(`claude-1 asked again within its TTL: ${refused}`);
    const recheck = debugOf(w, { caller: undefined });
    await getKey(recheck.deps, { recheck: true });
    expect(recheck.lines).toContain(`the caller asked again within its TTL: ${refused}`);
  });
});

describe('records from the future', () => {
  it('does not share a store failure stamped after now (clock set back, or planted): get and --recheck read the store', async () => {
    const w = world();
    const account = cacheAccount(testProfile(), () => 'alice');
    const planted = { at: w.clock.now + 60 * MINUTE, kind: 'StoreUnreachable', message: 'planted failure', fix: 'wait' };
    w.state.recordStoreFailure(account, planted);
    expect((await getKey(w.deps('claude-1'))).key).toBe('sk-test-one');
    w.state.recordStoreFailure(account, planted);
    expect((await getKey(w.deps('claude-2'), { recheck: true })).key).toBe('sk-test-one');
    expect(w.store.reads).toBe(2);
  });

  it('says a cached key read "in the future" was read at a time ahead of the clock, not "-59m ago"', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now -= 60 * MINUTE;
    w.store.fail = down;
    expect((await getKey(w.deps('claude-2'))).from).toBe('stale-cache');
    expect(w.warnings).toEqual([
      expect.stringMatching(/serving the cached key read at a time still ahead of this clock \(the clock was set back\)$/),
    ]);
  });
});

describe('waiting for a live lock holder', () => {
  /** A lock another live process holds for ever; each wait moves the fake clock on by its length. */
  function heldLock(clock: { now: number }, waits: number[]): Lock {
    return {
      acquire: async (_name, waitMs) => {
        waits.push(waitMs);
        clock.now += waitMs;
        return undefined;
      },
    };
  }

  async function waitedBeforeReadingItself(startupMs: number): Promise<{ waited: number; waits: number[] }> {
    const w = world();
    const waits: number[] = [];
    const started = w.clock.now;
    let readAt = 0;
    w.store.during = async () => void (readAt = w.clock.now);
    await getKey(w.deps('claude-1', { lock: heldLock(w.clock, waits), startupMs }));
    expect(w.store.reads).toBe(1);
    return { waited: readAt - started, waits };
  }

  it("waits as long as the holder's store call may take, plus a second, then reads the store itself", async () => {
    const { waited, waits } = await waitedBeforeReadingItself(40);
    const bound = storeCallCeilingMs(testProfile().timeoutMs) + 1_000 + 4 * 40;
    expect(waited).toBeGreaterThanOrEqual(bound);
    expect(waited).toBeLessThan(bound + 500);
    // Rounds grow from 100 ms to 500 ms: a long wait costs the waiter few looks.
    expect(waits.slice(0, 5)).toEqual([100, 150, 225, 337.5, 500]);
    expect(waits.at(-1)).toBe(500);
  });

  it('gives a holder that took over from a killed one the whole wait again, from when it took the lock', async () => {
    const w = world();
    const waits: number[] = [];
    const started = w.clock.now;
    const lock = heldLock(w.clock, waits);
    // The first holder dies 6 s in; the next one holds the lock from then on.
    lock.heldSince = async () => (w.clock.now - started < 6_000 ? started : started + 6_000);
    let readAt = 0;
    w.store.during = async () => void (readAt = w.clock.now);
    await getKey(w.deps('claude-1', { lock, startupMs: 40 }));
    expect(readAt - started).toBeGreaterThanOrEqual(6_000 + storeCallCeilingMs(testProfile().timeoutMs) + 1_000 + 4 * 40);
  });

  it('waits longer on a machine where this process itself started slowly: the holder runs as slowly', async () => {
    const { waited } = await waitedBeforeReadingItself(5_000);
    expect(waited).toBeGreaterThanOrEqual(storeCallCeilingMs(testProfile().timeoutMs) + 1_000 + 4 * 5_000);
  });
});

describe('refresh-ahead', () => {
  it('serves a key past 80 % of refreshAfter at once and starts one background refresh per 30 s', async () => {
    const w = world();
    let started = 0;
    const deps = (caller: string) => w.deps(caller, { startBackgroundRefresh: () => void started++ });
    await getKey(deps('claude-1'));
    w.clock.now += 23 * MINUTE;
    expect((await getKey(deps('claude-2'))).from).toBe('cache');
    expect(started).toBe(0);
    w.clock.now += 1 * MINUTE;
    expect((await getKey(deps('claude-3'))).from).toBe('cache');
    expect((await getKey(deps('claude-4'))).from).toBe('cache');
    expect(started).toBe(1);
    w.clock.now += REFRESH_AHEAD_EVERY_MS;
    await getKey(deps('claude-5'));
    expect(started).toBe(2);
    expect(w.store.reads).toBe(1);
  });

  it('the background half re-reads the store into the cache, and does nothing when another process already did', async () => {
    const w = world(testProfile({ refreshAfterMs: 15 * MINUTE }));
    await getKey(w.deps('claude-1'));
    w.store.rotate('sk-test-two', 'v2');
    w.clock.now += 13 * MINUTE;
    expect(await refreshAhead(w.deps())).toBe('refreshed');
    expect(await refreshAhead(w.deps())).toBe('not needed');
    expect(w.store.reads).toBe(2);
    w.clock.now += 5 * MINUTE;
    expect(await getKey(w.deps('claude-2'))).toMatchObject({ key: 'sk-test-two', from: 'cache' });
  });
});
