// Bulk admin actions at fleet scale: the adaptive limiter on its own (no I/O; its tests against moto
// and the LiteLLM fake are in bulk-services.test.ts).
import { describe, expect, it, vi } from 'vitest';
import {
  BulkLimiter,
  DEFAULT_CONCURRENCY,
  limiterFor,
  pacedAt,
  progressLine,
  type RateGate,
  runBulk,
  terminalProgress,
  ThrottleRelay,
  type BulkProgress,
} from '../../src/admin/bulk.ts';
import { StoreUnreachable } from '../../src/kernel/errors.ts';
import { markThrottled } from '../../src/kernel/retry.ts';
import type { KeyIssuer } from '../../src/gateway/key-issuer.ts';
import type { Provider } from '../../providers/provider.ts';
import { virtualClock } from '../support/virtual-clock.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the bulk limiter', () => {
  it('starts at 4, grows by one per width of successes up to the ceiling, halves on a throttle', () => {
    const limiter = new BulkLimiter(6);
    expect(limiter.state.width).toBe(4);
    for (let index = 0; index < 4; index++) limiter.rowSucceeded();
    expect(limiter.state.width).toBe(5);
    for (let index = 0; index < 20; index++) limiter.rowSucceeded();
    expect(limiter.state.width).toBe(6);
    limiter.store.throttled(0);
    expect(limiter.state.width).toBe(3);
    // A burst of refusals from the calls already in flight is one event, not three halvings.
    limiter.store.throttled(0);
    limiter.gateway.throttled(0);
    expect(limiter.state.width).toBe(3);
    expect(limiter.state.throttles).toBe(3);
    expect(new BulkLimiter(1).state.width).toBe(1);
  });

  it('counts the successes toward the next step from zero after each step and after each halving', () => {
    const limiter = new BulkLimiter(8);
    for (let index = 0; index < 4; index++) limiter.rowSucceeded();
    expect(limiter.state.width).toBe(5);
    for (let index = 0; index < 4; index++) limiter.rowSucceeded();
    expect(limiter.state.width).toBe(5);
    limiter.rowSucceeded();
    expect(limiter.state.width).toBe(6);
    limiter.rowSucceeded();
    limiter.rowSucceeded();
    limiter.store.throttled(0);
    expect(limiter.state.width).toBe(3);
    limiter.rowSucceeded();
    limiter.rowSucceeded();
    expect(limiter.state.width).toBe(3);
    limiter.rowSucceeded();
    expect(limiter.state.width).toBe(4);
  });

  it('keeps at least one row in flight, and a ceiling of a whole number of rows, at least one', () => {
    expect(new BulkLimiter(0).state).toMatchObject({ width: 1, ceiling: 1 });
    expect(new BulkLimiter(2.7).state).toMatchObject({ width: 2, ceiling: 2 });
    const one = new BulkLimiter(1);
    one.store.throttled(0);
    expect(one.state.width).toBe(1);
  });

  it('halves the width again on a throttle a full second after the last halving, not before', () => {
    let now = 0;
    const limiter = new BulkLimiter(16, { now: () => now, sleep: async () => {} });
    for (let index = 0; index < 4 + 5 + 6 + 7; index++) limiter.rowSucceeded();
    expect(limiter.state.width).toBe(8);
    limiter.store.throttled(0);
    expect(limiter.state.width).toBe(4);
    now = 999;
    limiter.gateway.throttled(0);
    expect(limiter.state.width).toBe(4);
    now = 1_000;
    limiter.gateway.throttled(0);
    expect(limiter.state.width).toBe(2);
    expect(limiter.state.throttles).toBe(3);
  });

  it('caps a rate from the calls taken in the second before the refusal (one exactly a second old included), and not from fewer than 4', async () => {
    let now = 0;
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async () => {} });
    const send = async (gate: RateGate, count: number) => {
      for (let index = 0; index < count; index++) await gate.call(async () => 'ok');
    };
    await send(limiter.store, 4);
    await send(limiter.gateway, 3);
    now = 1_000;
    limiter.store.throttled(0);
    limiter.gateway.throttled(0);
    expect(limiter.state.store.rateCap).toBeCloseTo(3.4, 5);
    // Three calls are no measure of a quota: paused, not capped.
    expect(limiter.state.gateway.rateCap).toBeUndefined();
    expect(limiter.state.gateway.throttles).toBe(1);
  });

  it('lowers a cap again only on a refusal a full second after the one that set it', async () => {
    let now = 0;
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async () => {} });
    for (let index = 0; index < 5; index++) await limiter.store.call(async () => 'ok');
    now = 1;
    for (let index = 0; index < 5; index++) await limiter.store.call(async () => 'ok');
    limiter.store.throttled(0);
    expect(limiter.state.store.rateCap).toBeCloseTo(8.5, 5);
    // 999.5 ms later the same event (the calls then in flight refused together): not lowered, though only 5 calls are in the second before it.
    now = 1_000.5;
    limiter.store.throttled(0);
    expect(limiter.state.store.rateCap).toBeCloseTo(8.5, 5);
    // A second later: only the 5 calls sent at 1 ms are in the second before it.
    now = 1_001;
    limiter.store.throttled(0);
    expect(limiter.state.store.rateCap).toBeCloseTo(4.25, 5);
    expect(limiter.state.store.throttles).toBe(3);
  });

  it('never sends more than the whole calls of a fractional cap in any one second', async () => {
    let now = 0;
    const sent: number[] = [];
    const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (now += ms) }, 3.5);
    for (let index = 0; index < 7; index++) await limiter.store.call(async () => void sent.push(now));
    // 3 a second, each 1/3.5 s after the one before at least: the 4th waits for the 1st to be a second old.
    expect(sent[3]! - sent[0]!).toBe(1_000);
    expect(sent[6]! - sent[3]!).toBe(1_000);
    expect(sent[1]! - sent[0]!).toBeCloseTo(1_000 / 3.5, 5);
  });

  it('never raises a --max-rate: a throttle that measures more than the rate given keeps the rate given', async () => {
    let now = 0;
    const sent: number[] = [];
    const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (now += ms) }, 3);
    for (let index = 0; index < 4; index++) await limiter.store.call(async () => void sent.push(now));
    // Paced at 3 a second: the fourth goes once the first is a second old, and the look-back counts all four.
    expect(sent[3]! - sent[0]!).toBe(1_000);
    limiter.store.throttled(0);
    expect(limiter.state.store.rateCap).toBe(3);
  });

  it('a refusal answered after a long round trip is measured against the second before it was sent', async () => {
    const clock = virtualClock();
    const limiter = new BulkLimiter(8, clock);
    let refusedOnce = false;
    await clock.run(
      (async () => {
        await Promise.all([1, 2, 3, 4].map(() => limiter.store.call(async () => 'ok')));
        await clock.sleep(1_000);
        const slow = limiter.store.call(async () => {
          if (refusedOnce) return;
          refusedOnce = true;
          await clock.sleep(1_000);
          throw markThrottled(new StoreUnreachable('the store is throttling requests (HTTP 429)', 'later'), 0);
        });
        // Sent while the slow one is out, two seconds after the first four.
        const meanwhile = (async () => {
          await clock.sleep(1_000);
          await limiter.store.call(async () => 'ok');
        })();
        await Promise.all([slow, meanwhile]);
      })(),
    );
    expect(refusedOnce).toBe(true);
    expect(limiter.state.store.rateCap).toBeCloseTo(3.4, 5);
  });

  it('paces a --max-rate under one call a second: one call, then the next 1/rate later', async () => {
    let now = 0;
    const sent: number[] = [];
    const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (now += ms) }, 0.5);
    for (let index = 0; index < 3; index++) await limiter.store.call(async () => void sent.push(now));
    expect(sent).toEqual([0, 2_000, 4_000]);
  });

  it('after a burst, sends no more calls in any one second than the cap, the next one as soon as the second allows', async () => {
    let now = 0;
    const sent: number[] = [];
    const limiter = new BulkLimiter(16, { now: () => now, sleep: async (ms) => void (now += ms) });
    for (let index = 0; index < 40; index++) await limiter.store.call(async () => void (sent.push(now), (now += 12)));
    limiter.store.throttled(0);
    expect(limiter.state.store.rateCap).toBeCloseTo(34, 5);
    for (let index = 0; index < 40; index++) await limiter.store.call(async () => void sent.push(now));
    // The first after the burst goes when the 7th of the burst is a second old: 34 of the last second's calls remain.
    expect(sent[40]).toBe(sent[6]! + 1_000);
    const mostInOneSecond = Math.max(...sent.slice(40).map((at) => sent.filter((other) => other > at - 1_000 && other <= at).length));
    expect(mostInOneSecond).toBe(34);
    // Then paced evenly at the cap.
    expect(sent[79]! - sent[46]!).toBeGreaterThanOrEqual(Math.floor((33 * 1_000) / 34));
  });

  it('backs off from half of 250 ms × 2^n to all of it, at most 16 s, when the service names no wait', async () => {
    const backOffs = async (random: number) => {
      let now = 0;
      const waits: number[] = [];
      const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) });
      const jitter = vi.spyOn(Math, 'random').mockReturnValue(random);
      try {
        let calls = 0;
        await limiter.store.call(async () => {
          if (++calls <= 8) throw markThrottled(new StoreUnreachable('the store is throttling requests (HTTP 429)', 'later'));
        });
      } finally {
        jitter.mockRestore();
      }
      return waits;
    };
    expect(await backOffs(0)).toEqual([250, 500, 1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(await backOffs(1)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000]);
  });

  it('only ever extends a pause: a shorter wait asked later does not cut the one before short', async () => {
    let now = 0;
    const waits: number[] = [];
    const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) });
    limiter.store.throttled(5_000);
    limiter.store.throttled(1_000);
    await limiter.store.call(async () => 'ok');
    expect(waits).toEqual([5_000]);
    expect(limiter.state.store.pausedUntil).toBe(5_000);
  });

  it('waits out a pause on a timer when no clock is given, so the process goes on meanwhile', async () => {
    const limiter = new BulkLimiter(4);
    limiter.store.throttled(30);
    let otherTimerFired = false;
    setTimeout(() => void (otherTimerFired = true), 1);
    await limiter.store.call(async () => 'ok');
    expect(otherTimerFired).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(limiter.state.store.pausedUntil);
  });

  it('after a failed row starts no new row, lets the ones in flight finish, and reports the first failure and the progress', async () => {
    const clock = virtualClock(1_000_000);
    const progress: BulkProgress[] = [];
    const rows = Array.from({ length: 20 }, (_, index) => index);
    const run = await clock.run(
      runBulk(
        rows,
        async (row) => {
          await clock.sleep(row === 1 ? 10 : 20);
          if (row === 1 || row === 2) throw new Error(`row ${row} failed`);
          return row * 2;
        },
        new BulkLimiter(8),
        { now: clock.now, onProgress: (state) => void progress.push({ ...state }) },
      ),
    );
    expect(run.statuses.map((status) => status.state)).toEqual([
      'done',
      'failed',
      'failed',
      'done',
      ...rows.slice(4).map(() => 'not started'),
    ]);
    expect(run.statuses[0]).toEqual({ state: 'done', result: 0 });
    expect(run.statuses[3]).toEqual({ state: 'done', result: 6 });
    expect(run.firstFailure).toEqual({ index: 1, error: new Error('row 1 failed') });
    expect(run.interrupted).toBe(false);
    expect(run.elapsedMs).toBe(20);
    expect(progress.map(({ done, total, elapsedMs }) => [done, total, elapsedMs])).toEqual([
      [1, 20, 10],
      [2, 20, 20],
      [3, 20, 20],
      [4, 20, 20],
    ]);
  });

  it('runs every row exactly once, and ends at once when there are none or when already aborted', async () => {
    const rows = Array.from({ length: 9 }, (_, index) => index);
    const seen: number[] = [];
    const limiter = new BulkLimiter(8);
    const run = await runBulk(rows, async (row, index) => (seen.push(index), row + 100), limiter);
    expect(run.statuses).toEqual(rows.map((row) => ({ state: 'done', result: row + 100 })));
    expect(seen.sort((a, b) => a - b)).toEqual(rows);
    // Each success counts toward a wider run: 4 to go from 4 to 5 rows in flight, 5 more to 6.
    expect(limiter.state.width).toBe(6);
    expect(await runBulk([], async () => 'never', new BulkLimiter(2))).toMatchObject({
      statuses: [],
      interrupted: false,
      firstFailure: undefined,
    });
    const aborted = await runBulk(rows, async () => 'never', new BulkLimiter(2), { signal: AbortSignal.abort() });
    expect(aborted.interrupted).toBe(true);
    expect(aborted.statuses.every((status) => status.state === 'not started')).toBe(true);
  });

  it('sends a throttled call again after the wait the service asked for, then paces calls at 0.85 of the rate it accepted', async () => {
    let now = 0;
    const waits: number[] = [];
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) });
    // Ten calls answered over the last second: the service takes about 10 a second.
    for (let index = 0; index < 10; index++) await limiter.store.call(async () => void (now += 100));
    // A burst of refused calls is not a rate the service accepted.
    let calls = 0;
    const answer = await limiter.store.call(async () => {
      if (++calls <= 3) throw markThrottled(new StoreUnreachable('the store is throttling requests (HTTP 429)', 'later'), 3_000);
      return 'ok';
    });
    expect(answer).toBe('ok');
    expect(calls).toBe(4);
    expect(waits[0]).toBeGreaterThanOrEqual(3_000);
    expect(limiter.state.store.rateCap).toBeCloseTo(8.5, 0);
    expect(limiter.state.gateway.rateCap).toBeUndefined();
    // Paced: consecutive calls are spaced by 1/rateCap.
    const before = now;
    for (let index = 0; index < 5; index++) await limiter.store.call(async () => 'ok');
    expect(now - before).toBeGreaterThanOrEqual(Math.floor((4 * 1_000) / limiter.state.store.rateCap!));
  });

  it('a refusal for another reason (not found, denied) is the answer: thrown at once, not sent again, no throttle counted', async () => {
    const limiter = new BulkLimiter(8, { now: () => 0, sleep: async () => {} });
    const width = limiter.state.width;
    let calls = 0;
    const denied = new StoreUnreachable('the store denied access', 'ask your admin');
    const error = await limiter.store
      .call(async () => {
        calls++;
        throw denied;
      })
      .catch((caught: unknown) => caught);
    expect(error).toBe(denied);
    expect(calls).toBe(1);
    expect(limiter.state.store.throttles).toBe(0);
    expect(limiter.state.width).toBe(width);
  });

  it('backs off before sending a throttled call again when the service named no wait, longer each time', async () => {
    let now = 0;
    const waits: number[] = [];
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) });
    let calls = 0;
    const answer = await limiter.store.call(async () => {
      if (++calls <= 3) throw markThrottled(new StoreUnreachable('the store is throttling requests (HTTP 429)', 'later'));
      return 'ok';
    });
    expect(answer).toBe('ok');
    // No Retry-After: the n-th back-off is 250 ms × 2^n, from half of it (jitter); not a hammering.
    expect(waits).toHaveLength(3);
    for (const [index, wait] of waits.entries()) expect(wait).toBeGreaterThanOrEqual(125 * 2 ** (index + 1));
    expect(now).toBeGreaterThanOrEqual(125 * (2 + 4 + 8));
  });

  it("keeps a cap per service: a throttled gateway does not slow the store's calls", async () => {
    let now = 0;
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async (ms) => void (now += ms) });
    for (let index = 0; index < 20; index++) {
      await limiter.store.call(async () => void (now += 25));
      await limiter.gateway.call(async () => void (now += 25));
    }
    let refused = false;
    await limiter.gateway.call(async () => {
      if (refused) return;
      refused = true;
      throw markThrottled(new StoreUnreachable('the gateway is throttling requests (HTTP 429)', 'later'), 1_000);
    });
    // Both services answered 20 calls a second; only the gateway is capped, under that.
    expect(limiter.state.gateway.rateCap).toBeGreaterThan(10);
    expect(limiter.state.gateway.rateCap).toBeLessThan(20);
    expect(limiter.state.store.rateCap).toBeUndefined();
    const before = now;
    for (let index = 0; index < 10; index++) await limiter.store.call(async () => 'ok');
    expect(now - before).toBe(0);
  });

  it("caps a service that took a burst of 40 in a run's first half second at 0.85 of 40 a second, not of the burst's rate", async () => {
    // A quota of 40 in any one second, taken at once: what the first half second of a run looks like.
    let now = 0;
    const limiter = new BulkLimiter(16, { now: () => now, sleep: async (ms) => void (now += ms) });
    for (let index = 0; index < 40; index++) await limiter.store.call(async () => void (now += 12));
    limiter.store.throttled(0);
    expect(now).toBeLessThan(500);
    expect(limiter.state.store.rateCap).toBeLessThanOrEqual(0.85 * 40);
  });

  // A service 50 ms away that takes `quota` calls a second, run in virtual time: 1,000 rows of two
  // calls each at a width of 16. What the proxy of bench:admin counts, here without a clock to wait on.
  async function throttledRun(shape: 'sliding window' | 'token bucket', quota = 40, maxRate?: number) {
    const clock = virtualClock();
    const limiter = new BulkLimiter(16, clock, maxRate);
    const accepted: number[] = [];
    let tokens = quota;
    let refilledAt = 0;
    let refused = 0;
    let toldAt: number | undefined;
    const refusedAfterTold: number[] = [];
    const takes = (at: number) => {
      if (shape === 'sliding window') {
        while (accepted.length && at - accepted[0]! >= 1_000) accepted.shift();
        if (accepted.length >= quota) return false;
        accepted.push(at);
        return true;
      }
      tokens = Math.min(quota, tokens + ((at - refilledAt) * quota) / 1_000);
      refilledAt = at;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    };
    const send = async () => {
      const arrived = clock.now();
      const taken = takes(arrived);
      if (!taken) {
        refused++;
        if (toldAt !== undefined && arrived > toldAt) refusedAfterTold.push(arrived);
      }
      await clock.sleep(50);
      if (!taken) {
        toldAt ??= clock.now();
        throw markThrottled(new StoreUnreachable('the store is throttling requests (ThrottlingException)', 'later'));
      }
    };
    const rows = Array.from({ length: 1_000 }, (_, index) => index);
    const run = await clock.run(
      runBulk(
        rows,
        async () => {
          await limiter.store.call(send);
          await limiter.store.call(send);
        },
        limiter,
        { now: clock.now },
      ),
    );
    const done = run.statuses.filter((status) => status.state === 'done').length;
    return { done, refused, refusedAfterTold, callsPerSecond: (2 * rows.length * 1_000) / run.elapsedMs, cap: limiter.state.store.rateCap };
  }

  it('against a quota of 40 calls in any one second: no call refused after the first refusal reached it, at over 0.8 of the quota', async () => {
    const result = await throttledRun('sliding window');
    expect(result.done).toBe(1_000);
    expect(result.refused).toBeGreaterThan(0);
    expect(result.refusedAfterTold).toEqual([]);
    // The cap is 0.85 of the 40 the service took in the second before its first refusal.
    expect(result.cap).toBeCloseTo(34, 5);
    expect(result.callsPerSecond).toBeGreaterThan(0.8 * 40);
    expect(result.callsPerSecond).toBeLessThanOrEqual(40);
  });

  it('with --max-rate 30 under a quota of 40: not one call refused, at the rate given', async () => {
    const result = await throttledRun('sliding window', 40, 30);
    expect(result.done).toBe(1_000);
    expect(result.refused).toBe(0);
    expect(result.cap).toBe(30);
    expect(result.callsPerSecond).toBeLessThanOrEqual(30);
    expect(result.callsPerSecond).toBeGreaterThan(0.9 * 30);
  });

  it('against a token bucket (40 at once, 40 a second after), whose stored burst overstates the rate: each later refusal lowers the cap by 0.85, until the refill sustains it', async () => {
    const result = await throttledRun('token bucket');
    expect(result.done).toBe(1_000);
    // The calls taken in a second include what the bucket had saved: 0.85 of them is above the
    // refill once or twice (measured in 15 runs: 2 each, at 3.7 s and 13.6–22 s of ~55 s; the back-off is random), then below it.
    expect(result.refusedAfterTold.length).toBeLessThanOrEqual(3);
    expect(result.cap).toBeLessThan(40);
    expect(result.callsPerSecond).toBeGreaterThan(0.8 * 40);
  });

  it('never raises a cap within a run: ten quiet minutes later calls are still paced under it', async () => {
    let now = 0;
    const limiter = new BulkLimiter(8, { now: () => now, sleep: async (ms) => void (now += ms) });
    for (let index = 0; index < 40; index++) await limiter.store.call(async () => void (now += 50));
    limiter.store.throttled(0);
    const cap = limiter.state.store.rateCap!;
    expect(cap).toBeCloseTo(17, 5);
    now += 600_000;
    const before = now;
    for (let index = 0; index < 18; index++) await limiter.store.call(async () => 'ok');
    expect(limiter.state.store.rateCap).toBe(cap);
    expect(now - before).toBeGreaterThanOrEqual(Math.floor((17 * 1_000) / cap));
  });

  it('gives up on a call that is not throttled at once, and on one throttled 12 times', async () => {
    let now = 0;
    const limiter = new BulkLimiter(4, { now: () => now, sleep: async (ms) => void (now += ms) });
    await expect(limiter.store.call(async () => Promise.reject(new StoreUnreachable('down', 'later')))).rejects.toThrow('down');
    let calls = 0;
    await expect(
      limiter.store.call(async () => Promise.reject(markThrottled(new StoreUnreachable(`throttled ${++calls}`, 'later'), 0))),
    ).rejects.toThrow('throttled 12');
  });

  it('after an abort starts no new row, lets the ones in flight finish, and says which is which', async () => {
    const limiter = new BulkLimiter(4);
    const controller = new AbortController();
    const rows = Array.from({ length: 40 }, (_, index) => index);
    const run = await runBulk(
      rows,
      async (row) => {
        if (row === 10) controller.abort();
        await sleep(5);
        return row * 2;
      },
      limiter,
      { signal: controller.signal },
    );
    expect(run.interrupted).toBe(true);
    const done = run.statuses.flatMap((status, index) => (status.state === 'done' ? [index] : []));
    const notStarted = run.statuses.flatMap((status, index) => (status.state === 'not started' ? [index] : []));
    expect(done).toContain(10);
    expect(done.length + notStarted.length).toBe(40);
    expect(Math.max(...done)).toBeLessThan(Math.min(...notStarted));
    expect(notStarted.length).toBeGreaterThan(20);
  });

  it('never has more rows in flight than the width allows', async () => {
    const limiter = new BulkLimiter(3);
    let inFlight = 0;
    let most = 0;
    await runBulk(
      Array.from({ length: 30 }, (_, index) => index),
      async () => {
        most = Math.max(most, ++inFlight);
        await sleep(2);
        inFlight--;
      },
      limiter,
    );
    expect(most).toBe(3);
  });
});

describe('what an admin sees of a bulk run: the progress line, the paced-at summary, the wrapped store and gateway', () => {
  const progress = (done: number, total: number, elapsedMs: number, limiter = new BulkLimiter(8)): BulkProgress => ({
    done,
    total,
    elapsedMs,
    limiter: limiter.state,
  });

  it('shows done/total as a bar, the rate, the time left, the width and no throttling', () => {
    expect(progressLine(progress(30, 120, 10_000), 'rotate', 0)).toBe(
      'rotate [######------------------] 30/120  3.0/s  ETA 30s  4 at a time  no throttling',
    );
    expect(progressLine(progress(120, 120, 10_000), 'import', 0)).toBe(
      'import [########################] 120/120  12.0/s  done  4 at a time  no throttling',
    );
    // Nothing done yet, or no time passed: no rate to tell the time left from.
    expect(progressLine(progress(0, 10, 5_000), 'revoke', 0)).toContain('0/10  0.0/s  ETA -  ');
    expect(progressLine(progress(3, 10, 0), 'revoke', 0)).toContain('3/10  0.0/s  ETA -  ');
    // No rows at all: a full bar, and done.
    expect(progressLine(progress(0, 0, 0), 'revoke', 0)).toBe(
      'revoke [########################] 0/0  0.0/s  done  4 at a time  no throttling',
    );
  });

  it('tells the time left in seconds, then minutes and seconds, then hours and minutes', () => {
    const eta = (secondsLeft: number) => progressLine(progress(1, 1 + secondsLeft, 1_000), 'x', 0).match(/ETA (\S+)/)![1];
    expect(eta(59)).toBe('59s');
    expect(eta(59.2)).toBe('1m00s');
    expect(eta(61)).toBe('1m01s');
    expect(eta(3_599)).toBe('59m59s');
    expect(eta(3_600)).toBe('1h00m');
    expect(eta(2 * 3_600 + 5 * 60 + 59)).toBe('2h05m');
  });

  it("says which service is throttled (waiting out its pause) and which is paced, at its cap's whole calls a second", () => {
    const limiter = new BulkLimiter(8);
    limiter.state.store.pausedUntil = 1_000;
    limiter.state.gateway.rateCap = 12.6;
    expect(progressLine(progress(1, 2, 1_000, limiter), 'rotate', 999)).toMatch(
      / {2}store throttled: waiting, gateway paced at 13 calls\/s$/,
    );
    // A pause that ends now is over: the store is neither waiting nor paced.
    expect(progressLine(progress(1, 2, 1_000, limiter), 'rotate', 1_000)).toMatch(/at a time {2}gateway paced at 13 calls\/s$/);
    limiter.state.store.rateCap = 4;
    expect(progressLine(progress(1, 2, 1_000, limiter), 'rotate', 1_000)).toMatch(
      / {2}store paced at 4 calls\/s, gateway paced at 13 calls\/s$/,
    );
  });

  it('on a terminal draws the first line at once, then at most every 200 ms, each replacing the one before, and the last one always', () => {
    let now = 0;
    const lines: string[] = [];
    const shown = terminalProgress(
      (line) => lines.push(line),
      'import',
      true,
      () => now,
    );
    shown.update(progress(1, 10, 100));
    expect(lines).toEqual([expect.stringMatching(/^import \[.*\] 1\/10 /)]);
    now = 199;
    shown.update(progress(2, 10, 299));
    expect(lines).toHaveLength(1);
    now = 200;
    shown.update(progress(3, 10, 300));
    expect(lines).toHaveLength(2);
    // Cursor up one line and clear it, then the new line.
    const replacing = '\x1b[1A\x1b[2K';
    expect(lines[1]!.slice(replacing.length)).toMatch(/^import \[.*\] 3\/10 /);
    expect(lines[1]!.startsWith(replacing)).toBe(true);
    now = 250;
    shown.update(progress(10, 10, 350));
    expect(lines[2]!.slice(replacing.length)).toMatch(/^import \[.*\] 10\/10 .* done /);
    expect(lines[2]!.startsWith(replacing)).toBe(true);
    shown.end();
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe(lines[2]);
    shown.end(progress(9, 10, 400));
    expect(lines[4]).toMatch(/ 9\/10 /);
  });

  it('draws nothing when stderr is not a terminal', () => {
    const lines: string[] = [];
    const hidden = terminalProgress(
      (line) => lines.push(line),
      'import',
      false,
      () => 0,
    );
    hidden.update(progress(10, 10, 100));
    hidden.end();
    hidden.end(progress(10, 10, 100));
    expect(lines).toEqual([]);
    // Ended before any row finished: nothing to draw.
    terminalProgress(
      (line) => lines.push(line),
      'import',
      true,
      () => 0,
    ).end();
    expect(lines).toEqual([]);
  });

  it('--json says the rate each service ended paced at, to one decimal, and null for one never throttled', () => {
    const limiter = new BulkLimiter(8, {}, 34.04);
    expect(pacedAt(limiter.state)).toEqual({ store: 34, gateway: null });
    limiter.state.gateway.rateCap = 8.46;
    expect(pacedAt(limiter.state)).toEqual({ store: 34, gateway: 8.5 });
  });

  it("paces the store's reads, writes and revokes through the action's store gate, and not its identity or listing", async () => {
    const limiter = new BulkLimiter(4);
    const called: string[] = [];
    const store = {
      describe: () => 'the test store',
      loginCommand: () => 'login here',
      whoami: async () => ({ account: 'admin' }),
      async *list(prefix: string) {
        called.push(`list ${prefix}`);
        yield { name: `${prefix}a`, enabled: true, labels: {} };
      },
      readCurrent: async (name: string) => (called.push(`read ${name}`), { value: 'sk-test-read', version: '1' }),
      write: async (name: string, value: string) => (called.push(`write ${name} ${value}`), { version: '2' }),
      revoke: async (name: string, options: { purge: boolean }) => void called.push(`revoke ${name} ${options.purge}`),
    } as unknown as Provider;
    const paced = limiter.provider(store, false);
    expect(paced.describe()).toBe('the test store');
    expect(paced.loginCommand()).toBe('login here');
    expect(await paced.whoami()).toEqual({ account: 'admin' });
    for await (const summary of paced.list('fleet/')) expect(summary.name).toBe('fleet/a');
    expect(limiter.state.store.calls).toBe(0);
    expect(await paced.readCurrent('fleet/a')).toEqual({ value: 'sk-test-read', version: '1' });
    expect(await paced.write('fleet/a', 'sk-test-new', {} as never)).toEqual({ version: '2' });
    await paced.revoke('fleet/a', { purge: true });
    expect(called).toEqual(['list fleet/', 'read fleet/a', 'write fleet/a sk-test-new', 'revoke fleet/a true']);
    expect(limiter.state.store.calls).toBe(3);
    // A provider opened with the relay paces its own calls: not twice.
    const inside = limiter.provider(store, true);
    await inside.readCurrent('fleet/a');
    await inside.write('fleet/a', 'sk-test-new', {} as never);
    await inside.revoke('fleet/a', { purge: false });
    expect(limiter.state.store.calls).toBe(3);
    expect(called).toHaveLength(7);
  });

  it("sends every call to the gateway's key API through the gateway's own gate", async () => {
    const limiter = new BulkLimiter(4);
    const called: string[] = [];
    const gateway: KeyIssuer = {
      describe: () => 'the test gateway',
      mint: async (user, alias) => (called.push(`mint ${user} ${alias}`), { key: 'sk-test-minted' }),
      retire: async (key, graceMs) => (called.push(`retire ${key} ${graceMs}`), 'retired'),
      revoke: async (keys) => (called.push(`revoke ${keys.join(' ')}`), true),
      revokeUser: async (user) => (called.push(`revokeUser ${user}`), 2),
      revokeAlias: async (user, alias) => (called.push(`revokeAlias ${user} ${alias}`), 1),
    };
    const paced = limiter.issuer(gateway);
    expect(paced.describe()).toBe('the test gateway');
    expect(await paced.mint('dev01', 'alias-1')).toEqual({ key: 'sk-test-minted' });
    expect(await paced.retire('sk-test-old', 600_000)).toBe('retired');
    expect(await paced.revoke(['sk-test-a', 'sk-test-b'])).toBe(true);
    expect(await paced.revokeUser('dev02')).toBe(2);
    expect(await paced.revokeAlias('dev03', 'alias-3')).toBe(1);
    expect(called).toEqual([
      'mint dev01 alias-1',
      'retire sk-test-old 600000',
      'revoke sk-test-a sk-test-b',
      'revokeUser dev02',
      'revokeAlias dev03 alias-3',
    ]);
    expect(limiter.state.gateway.calls).toBe(5);
    expect(limiter.state.store.calls).toBe(0);
  });

  it("relays a provider's calls and throttles to the action running now, straight through when none runs", async () => {
    const relay = new ThrottleRelay();
    expect(await relay.pace(async () => 'sent')).toBe('sent');
    relay.notify(5_000);
    const limiter = limiterFor({ ceiling: 2, maxRate: 5, relay });
    expect(relay.target).toBe(limiter);
    expect(limiter.state).toMatchObject({ width: 2, ceiling: 2, throttles: 0, store: { rateCap: 5, calls: 0 } });
    expect(await relay.pace(async () => 'paced')).toBe('paced');
    expect(limiter.state.store.calls).toBe(1);
    relay.notify(0);
    expect(limiter.state.store.throttles).toBe(1);
    expect(limiter.state.width).toBe(1);
    // No options: the default ceiling, and a store with no cap until it throttles.
    expect(limiterFor(undefined).state).toMatchObject({ width: 4, ceiling: DEFAULT_CONCURRENCY, store: { rateCap: undefined } });
    expect(DEFAULT_CONCURRENCY).toBe(16);
  });
});
