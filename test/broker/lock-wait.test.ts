// How long `get` waits for another process's lock, whatever the clocks say, and what a waiter does
// once that process's store read failed. The broker core with a fake lock: wall and monotonic
// clocks apart, every lock acquisition counted. No I/O.
import { describe, expect, it } from 'vitest';
import { LOCK_WAIT_MAX_WAITS, getKey, lockWaitMs } from '../../src/broker/broker.ts';
import { StoreUnreachable } from '../../src/kernel/errors.ts';
import type { Lock } from '../../src/broker/lock.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

const HOUR = 60 * MINUTE;
/** More rounds than any bounded wait takes: the old endless wait shows up as this error. */
const ROUNDS_LIMIT = 10_000;

/** A lock held for ever by another live process; each wait moves only the monotonic clock on by its length. */
function heldLock(monotonic: { now: number }, heldSince: () => number | undefined): Lock & { rounds: number } {
  const lock = {
    rounds: 0,
    async acquire(_name: string, waitMs: number) {
      if (++lock.rounds > ROUNDS_LIMIT) throw new Error(`still waiting for the lock after ${ROUNDS_LIMIT} rounds`);
      monotonic.now += waitMs;
      return undefined;
    },
    heldSince: async () => heldSince(),
  };
  return lock;
}

describe('a waiter never waits for the lock without limit', () => {
  async function waitedBeforeReadingItself(heldSince: (wallNow: number) => number | undefined): Promise<number> {
    const w = world();
    const monotonic = { now: 0 };
    let readAt: number | undefined;
    w.store.during = async () => void (readAt = monotonic.now);
    const lock = heldLock(monotonic, () => heldSince(w.clock.now));
    const served = await getKey(w.deps('claude-1', { lock, monotonicNow: () => monotonic.now }));
    expect(served).toMatchObject({ key: 'sk-test-one', from: 'store' });
    return readAt!;
  }
  const waitMs = lockWaitMs(testProfile(), 0);

  it('a lock stamped an hour ahead (the clock was set back) adds no wait: the store is read after one wait', async () => {
    const waited = await waitedBeforeReadingItself((now) => now + HOUR);
    expect(waited).toBeGreaterThanOrEqual(waitMs);
    expect(waited).toBeLessThan(waitMs + 500);
  });

  it('a lock that looks newly taken at every look (the wall clock keeps stepping back) ends the wait at twice the wait', async () => {
    const waited = await waitedBeforeReadingItself((now) => now);
    expect(waited).toBeGreaterThanOrEqual(waitMs);
    expect(waited).toBeLessThan(LOCK_WAIT_MAX_WAITS * waitMs + 500);
  });

  it('the wait is measured on the monotonic clock: a wall clock that stands still does not stretch it', async () => {
    // The fake wall clock never moves here; only the monotonic one does.
    const waited = await waitedBeforeReadingItself(() => undefined);
    expect(waited).toBeLessThan(waitMs + 500);
  });
});

describe('what a waiter takes from the cache', () => {
  it('not an entry stamped after now (a holder whose clock runs ahead): it reads the store itself', async () => {
    const w = world();
    const account = cacheAccount(testProfile(), () => 'alice');
    const ahead = { key: 'sk-test-ahead', version: 'v0', secret: 'claude-code/keys/alice', fetchedAt: w.clock.now + MINUTE };
    const lock: Lock = {
      acquire: async () => {
        w.cache.data.set(account, serializeEntry(ahead));
        return async () => {};
      },
    };
    expect(await getKey(w.deps('claude-1', { lock }))).toMatchObject({ key: 'sk-test-one', from: 'store' });
  });
});

describe("after the holder's store read failed, waiters do not take the lock", () => {
  /** A lock of one holder at a time that counts acquisitions; a waiter polls it until its wait or `giveUp` ends it. */
  function countingLock(): Lock & { taken: number } {
    let held = false;
    const lock = {
      taken: 0,
      async acquire(_name: string, waitMs: number, giveUp?: () => boolean) {
        const until = Date.now() + waitMs;
        for (;;) {
          if (giveUp?.()) return undefined;
          if (!held) {
            held = true;
            lock.taken++;
            return async () => void (held = false);
          }
          if (Date.now() >= until) return undefined;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      },
    };
    return lock;
  }

  it('five waiters on a stale cache: one store read, one lock taken, every caller served the cached key', async () => {
    const w = world(testProfile({ refreshAfterMs: MINUTE }));
    await getKey(w.deps('claude-0'));
    w.clock.now += 2 * MINUTE;
    const lock = countingLock();
    let answer!: () => void;
    w.store.during = () => new Promise<void>((resolve) => (answer = resolve));
    w.store.fail = () => new StoreUnreachable('the fake store did not answer GetSecretValue within 5000 ms', 'check your network');
    const holder = getKey(w.deps('claude-1', { lock, monotonicNow: () => performance.now() }));
    while (w.store.reads < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    const waiters = Array.from({ length: 5 }, (_, i) => getKey(w.deps(`claude-${i + 2}`, { lock, monotonicNow: () => performance.now() })));
    await new Promise((resolve) => setTimeout(resolve, 50));
    answer();
    const served = await Promise.all([holder, ...waiters]);
    expect(served.map((entry) => [entry.key, entry.from])).toEqual(Array.from({ length: 6 }, () => ['sk-test-one', 'stale-cache']));
    expect(w.store.reads).toBe(2);
    expect(lock.taken).toBe(1);
  });
});
