// The shared store retry policy: bounded attempts inside one time budget, honouring throttling.
import { describe, expect, it } from 'vitest';
import {
  classifyStoreError,
  operationDeadline,
  retryAfterMs,
  storeCallCeilingMs,
  throttlingOnly,
  withStoreRetry,
  type Pace,
} from '../../src/kernel/retry.ts';

/** Time that moves only when the policy sleeps (the budget's clock never ticks). */
function fakeTime() {
  const time = { now: 0, waits: [] as number[] };
  return {
    time,
    now: () => time.now,
    sleep: async (ms: number) => {
      time.waits.push(ms);
      time.now += ms;
    },
    setTimer: () => ({ cancel() {} }),
    random: () => 0.5,
  };
}

/**
 * A fake clock whose timers fire `lateMs` after they are due, as on a machine where the process
 * waits that long for a CPU each time it wakes. `run` fires timers until `done` settles.
 */
function starvedClock(lateMs: number) {
  let now = 0;
  const timers: { at: number; callback: () => void }[] = [];
  return {
    now: () => now,
    setTimer(callback: () => void, ms: number) {
      const timer = { at: now + ms + lateMs, callback };
      timers.push(timer);
      return { cancel: () => void timers.splice(timers.indexOf(timer), 1) };
    },
    async run(done: Promise<unknown>): Promise<number> {
      let settled = false;
      done.then(
        () => (settled = true),
        () => (settled = true),
      );
      for (;;) {
        await new Promise((resolve) => setImmediate(resolve));
        if (settled || timers.length === 0) return now;
        timers.sort((a, b) => a.at - b.at);
        const next = timers.shift()!;
        now = next.at;
        next.callback();
      }
    },
  };
}

/** Blocks the event loop, as compiling the SDK or waiting for a CPU does. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const throttled = (headers: Record<string, string> = {}) =>
  Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 }, $response: { headers } });

describe('withStoreRetry', () => {
  it('retries a throttled call after the Retry-After the store asked for, then succeeds', async () => {
    const t = fakeTime();
    let calls = 0;
    const result = await withStoreRetry(
      async () => {
        if (++calls < 3) throw throttled({ 'retry-after': '1' });
        return 'ok';
      },
      { budgetMs: 5_000, ...t },
    );
    expect(result).toBe('ok');
    expect(t.time.waits).toEqual([1_000, 1_000]);
  });

  it("gives up when the next wait would outlast the budget, with the store's own error", async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw throttled({ 'retry-after': '2' });
        },
        { budgetMs: 3_000, ...t },
      ),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(calls).toBe(2);
    expect(t.time.now).toBeLessThan(3_000);
  });

  it('does not retry sooner than a store asks: a Retry-After beyond the longest wait ends the call at once', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw throttled({ 'retry-after': '30' });
        },
        { budgetMs: 60_000, ...t },
      ),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(calls).toBe(1);
    expect(t.time.waits).toEqual([]);
  });

  it('waits the base delay when Retry-After says 0 (whole seconds, rounded down)', async () => {
    const t = fakeTime();
    let calls = 0;
    await withStoreRetry(
      async () => {
        if (++calls < 2) throw throttled({ 'retry-after': '0' });
        return 'ok';
      },
      { budgetMs: 5_000, baseDelayMs: 150, ...t },
    );
    expect(t.time.waits).toEqual([150]);
  });

  it('sends a call that is not idempotent again only when it was throttled', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
        },
        { budgetMs: 5_000, classify: throttlingOnly, ...t },
      ),
    ).rejects.toThrow('reset');
    expect(calls).toBe(1);
    let throttledCalls = 0;
    await withStoreRetry(
      async () => {
        if (++throttledCalls < 2) throw Object.assign(new Error('429'), { statusCode: 429 });
        return 'ok';
      },
      { budgetMs: 5_000, classify: throttlingOnly, ...t },
    );
    expect(throttledCalls).toBe(2);
  });

  it('does not retry a final answer such as access denied', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('denied'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
        },
        { budgetMs: 5_000, ...t },
      ),
    ).rejects.toThrow('denied');
    expect(calls).toBe(1);
  });

  it('stops after the attempt limit on transient failures, with exponential back-off', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw Object.assign(new Error('unavailable'), { $metadata: { httpStatusCode: 503 } });
        },
        { budgetMs: 60_000, attempts: 4, baseDelayMs: 100, ...t },
      ),
    ).rejects.toThrow('unavailable');
    expect(calls).toBe(4);
    expect(t.time.waits).toEqual([50, 100, 200]);
  });

  it('gives each attempt a signal that fires when the whole budget is spent', async () => {
    const clock = starvedClock(0);
    let abortedAt: number | undefined;
    const call = withStoreRetry(
      (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => ((abortedAt = clock.now()), reject(signal.reason)))),
      { budgetMs: 200, now: clock.now, setTimer: clock.setTimer },
    );
    await clock.run(call);
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(abortedAt).toBe(200);
  });

  it("runs out of time while the store throttles: the store's throttling answer, not a timeout (the fix is to wait, not the network)", async () => {
    // The retry after a 429 is in flight when the budget ends (a slow answer on a busy machine), or
    // the caller's own deadline (an operation of several calls) aborts it first.
    const second: Record<string, (signal: AbortSignal) => Promise<never>> = {
      'heeds its signal': (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      'ignores its signal': () => new Promise(() => {}),
      "is aborted by the caller's deadline": () => Promise.reject(new DOMException('This operation was aborted', 'AbortError')),
    };
    for (const [how, attempt] of Object.entries(second)) {
      const clock = starvedClock(0);
      let calls = 0;
      const call = withStoreRetry((signal) => (++calls === 1 ? Promise.reject(throttled({ 'retry-after': '0' })) : attempt(signal)), {
        budgetMs: 1_000,
        now: clock.now,
        setTimer: clock.setTimer,
        sleep: async () => {},
      });
      await clock.run(call);
      await expect(call, `an attempt that ${how}`).rejects.toMatchObject({ name: 'ThrottlingException' });
      expect(calls).toBe(2);
    }
    // A reset socket after a 429 is still a network failure (the AWS SDK names it "TimeoutError" too).
    let calls = 0;
    const reset = Object.assign(new Error('socket hang up'), { name: 'TimeoutError', code: 'ECONNRESET' });
    const t = fakeTime();
    await expect(
      withStoreRetry(async () => Promise.reject(++calls === 1 ? throttled({ 'retry-after': '0' }) : reset), {
        budgetMs: 60_000,
        ...t,
        attempts: 3,
      }),
    ).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('ends within the budget even when an attempt ignores its signal (a child process, a stuck token request)', async () => {
    const clock = starvedClock(0);
    const call = withStoreRetry(() => new Promise(() => {}), { budgetMs: 200, now: clock.now, setTimer: clock.setTimer });
    const endedAt = await clock.run(call);
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError', message: 'no answer within 200 ms' });
    expect(endedAt).toBe(200);
  });

  it('does not count time the process could not run against the store: an answer that came while it was starved is taken', async () => {
    // The attempt holds the event loop for three budgets before its request goes out (the SDK's
    // first use on a starved machine), then the store answers at once. A deadline timer judged in
    // wall time fires first when the loop turns again, and blamed the store: 19 of 50 cold gets
    // failed that way on a 2-core machine.
    const result = await withStoreRetry(
      async (signal) => {
        blockFor(600);
        await new Promise((resolve) => setTimeout(resolve, 20));
        signal.throwIfAborted();
        return 'the key';
      },
      { budgetMs: 200, ceilingMs: 60_000 },
    );
    expect(result).toBe('the key');
  });

  it('still ends a call at the ceiling in wall time when the process stays starved and the store never answers', async () => {
    // Every wake-up comes 450 ms late: the store's own time grows 50 ms per 500 ms of wall time.
    const clock = starvedClock(450);
    const call = withStoreRetry(() => new Promise(() => {}), { budgetMs: 1_000, now: clock.now, setTimer: clock.setTimer });
    const endedAt = await clock.run(call);
    await expect(call).rejects.toMatchObject({
      name: 'TimeoutError',
      message: /no answer within 1000 ms \(1500 ms in all on a busy machine\)/,
    });
    expect(endedAt).toBe(storeCallCeilingMs(1_000));
  });

  it("sends each attempt through the pace, whose waits are not the store's time: a limiter's queue does not time a call out", async () => {
    let paced = 0;
    const result = await withStoreRetry(
      async (signal) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        signal.throwIfAborted();
        return 'written';
      },
      {
        budgetMs: 200,
        // A limiter that holds the call three budgets (and two ceilings) before its slot.
        pace: async (send) => {
          paced++;
          await new Promise((resolve) => setTimeout(resolve, 700));
          return send();
        },
      },
    );
    expect(result).toBe('written');
    expect(paced).toBe(1);
  });

  it('still ends a paced call at the budget when the store itself does not answer', async () => {
    const started = Date.now();
    const call = withStoreRetry((signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))), {
      budgetMs: 200,
      pace: async (send) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return send();
      },
    });
    await expect(call).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(480);
  });

  it('an operation of several calls: its deadline moves on by the time the pace held each call, and still ends a call the store does not answer', async () => {
    const pace: Pace = async (send) => {
      await new Promise((resolve) => setTimeout(resolve, 600));
      return send();
    };
    const deadline = operationDeadline(500, pace);
    // Two calls, each held 600 ms (more than the whole budget each), each answered in about 20 ms:
    // a machine many times slower still answers both well within the 500 ms of store time.
    for (let call = 0; call < 2; call++) await deadline.pace!(() => new Promise((resolve) => setTimeout(resolve, 20)));
    expect(deadline.signal.aborted).toBe(false);
    const left = deadline.remainingMs();
    const started = Date.now();
    const unanswered = deadline.pace!(
      () => new Promise((_, reject) => deadline.signal.addEventListener('abort', () => reject(deadline.signal.reason))),
    );
    await expect(unanswered).rejects.toMatchObject({ name: 'TimeoutError', message: 'no answer within 500 ms' });
    // Held 600 ms, then the store time that was left (timers never fire early).
    expect(Date.now() - started).toBeGreaterThanOrEqual(600 + left - 2);
  });

  it("counts a sleeping process's ordinary wake-up delays as the store's time: a store that is down fails at the budget on a busy machine", async () => {
    const clock = starvedClock(20);
    const call = withStoreRetry(() => new Promise(() => {}), { budgetMs: 1_000, now: clock.now, setTimer: clock.setTimer });
    const endedAt = await clock.run(call);
    await expect(call).rejects.toMatchObject({ message: 'no answer within 1000 ms' });
    // Each tick comes 20 ms late and all of it is the store's: spent after 15 ticks of 70 ms.
    expect(endedAt).toBe(15 * 70);
  });
});

describe('classifyStoreError', () => {
  it('knows throttling from each SDK: AWS names, HTTP 429, gRPC RESOURCE_EXHAUSTED', () => {
    expect(classifyStoreError(throttled())).toBe('throttled');
    expect(classifyStoreError(Object.assign(new Error('x'), { statusCode: 429 }))).toBe('throttled');
    expect(classifyStoreError(Object.assign(new Error('x'), { response: { status: 429 } }))).toBe('throttled');
    expect(classifyStoreError(Object.assign(new Error('8 RESOURCE_EXHAUSTED'), { code: 8, details: 'quota' }))).toBe('throttled');
    expect(classifyStoreError(Object.assign(new Error('14 UNAVAILABLE'), { code: 14, details: 'down' }))).toBe('transient');
    expect(classifyStoreError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe('transient');
    expect(classifyStoreError(Object.assign(new Error('x'), { statusCode: 404 }))).toBe('final');
  });

  it('reads Retry-After as seconds or as an HTTP date, and retry-after-ms', () => {
    expect(retryAfterMs({ response: { headers: { 'Retry-After': '3' } } })).toBe(3_000);
    expect(retryAfterMs({ headers: new Headers({ 'retry-after-ms': '250' }) })).toBe(250);
    const now = Date.parse('2026-11-27T10:00:00Z');
    expect(retryAfterMs({ $response: { headers: { 'retry-after': 'Fri, 27 Nov 2026 10:00:02 GMT' } } }, now)).toBe(2_000);
    expect(retryAfterMs(new Error('plain'))).toBeUndefined();
  });

  it('reads a gRPC RetryInfo as google-gax decodes it (statusDetails)', () => {
    const exhausted = Object.assign(new Error('8 RESOURCE_EXHAUSTED'), {
      code: 8,
      details: 'quota',
      statusDetails: [{ reason: 'RATE_LIMIT_EXCEEDED' }, { retryDelay: { seconds: '1', nanos: 500_000_000 } }],
    });
    expect(retryAfterMs(exhausted)).toBe(1_500);
  });
});
