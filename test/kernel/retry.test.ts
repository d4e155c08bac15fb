// The shared store retry policy: bounded attempts inside one time budget, honouring throttling.
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  classifyStoreError,
  markThrottled,
  operationDeadline,
  retryAfterMs,
  storeCallCeilingMs,
  throttledError,
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
      // Node's http and fetch name theirs so, with a string code.
      "is aborted by the caller's deadline in node:http": () =>
        Promise.reject(Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' })),
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

describe('withStoreRetry: attempts, waits and bounds', () => {
  const unavailable = () => Object.assign(new Error('unavailable'), { $metadata: { httpStatusCode: 503 } });
  const throttledAfter = (ms: number) =>
    Object.assign(new Error('slow down'), { statusCode: 429, headers: { 'retry-after-ms': String(ms) } });

  it('makes 4 attempts by default, backing off from 150 ms with full jitter', async () => {
    const t = fakeTime();
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw unavailable();
        },
        { budgetMs: 60_000, ...t },
      ),
    ).rejects.toThrow('unavailable');
    expect(calls).toBe(4);
    expect(t.time.waits).toEqual([75, 150, 300]);
  });

  it('caps each back-off at the longest wait, and may not wait at all after a transient failure (jitter down to 0)', async () => {
    const t = fakeTime();
    const attempt = async () => {
      throw unavailable();
    };
    await expect(
      withStoreRetry(attempt, { budgetMs: 60_000, attempts: 5, baseDelayMs: 100, maxDelayMs: 300, ...t, random: () => 1 }),
    ).rejects.toThrow();
    expect(t.time.waits).toEqual([100, 200, 300, 300]);
    const immediate = fakeTime();
    await expect(withStoreRetry(attempt, { budgetMs: 60_000, attempts: 3, ...immediate, random: () => 0 })).rejects.toThrow();
    expect(immediate.time.waits).toEqual([0, 0]);
  });

  it('waits at least the base delay when throttled without a Retry-After, and as long as the store asks when that is longer', async () => {
    const t = fakeTime();
    let calls = 0;
    await withStoreRetry(
      async () => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('slow down'), { statusCode: 429 });
        if (calls === 2) throw throttledAfter(700);
        return 'ok';
      },
      { budgetMs: 60_000, ...t, random: () => 0 },
    );
    expect(t.time.waits).toEqual([150, 700]);
  });

  it('tells onRetry each wait, and gives each attempt its number and the budget left', async () => {
    const t = fakeTime();
    const seen: [number, number][] = [];
    const retries: unknown[] = [];
    await withStoreRetry(
      async (_signal, number, remainingMs) => {
        seen.push([number, remainingMs]);
        if (number === 1) throw throttledAfter(400);
        if (number === 2) throw unavailable();
        return 'ok';
      },
      { budgetMs: 5_000, baseDelayMs: 100, ...t, onRetry: (info) => retries.push(info) },
    );
    expect(seen).toEqual([
      [1, 5_000],
      [2, 4_600],
      [3, 4_500],
    ]);
    expect(retries).toEqual([
      { attempt: 1, waitMs: 400, reason: 'throttled' },
      { attempt: 2, waitMs: 100, reason: 'transient' },
    ]);
  });

  it('does not take a wait that leaves less than 50 ms of the budget for the next attempt', async () => {
    const run = async (askedMs: number) => {
      const t = fakeTime();
      let calls = 0;
      await withStoreRetry(
        async () => {
          if (++calls === 1) throw throttledAfter(askedMs);
          return 'ok';
        },
        { budgetMs: 1_000, maxDelayMs: 2_000, ...t },
      ).catch(() => {});
      return calls;
    };
    expect(await run(949)).toBe(2);
    expect(await run(950)).toBe(1);
  });

  it('starts no attempt after the call has ended: a wait that overslept past the ceiling ends it', async () => {
    let now = 0;
    const timers: { at: number; callback: () => void }[] = [];
    const setTimer = (callback: () => void, ms: number) => {
      const timer = { at: now + ms, callback };
      timers.push(timer);
      return { cancel: () => void timers.splice(timers.indexOf(timer), 1) };
    };
    // The process slept 2 s longer than it asked (a starved machine): the ceiling is past when it wakes.
    const sleep = async (ms: number) => {
      now += ms + 2_000;
      for (const timer of timers.splice(0)) timer.callback();
    };
    let calls = 0;
    await expect(
      withStoreRetry(
        async () => {
          calls++;
          throw unavailable();
        },
        { budgetMs: 1_000, now: () => now, setTimer, sleep, random: () => 0.5 },
      ),
    ).rejects.toMatchObject({ name: 'TimeoutError', message: 'no answer within 1000 ms (2075 ms in all on a busy machine)' });
    expect(calls).toBe(1);
  });

  it("counts a wake-up 30 ms late as the store's time, and 31 ms late as the process's own", async () => {
    const endOf = async (lateMs: number) => {
      const clock = starvedClock(lateMs);
      const call = withStoreRetry(() => new Promise(() => {}), { budgetMs: 1_000, now: clock.now, setTimer: clock.setTimer });
      const endedAt = await clock.run(call);
      await call.catch(() => {});
      return endedAt;
    };
    expect(await endOf(30)).toBe(13 * 80);
    expect(await endOf(31)).toBe(19 * 81);
  });
});

describe('withStoreRetry: the clock, the pace and the defaults', () => {
  const unavailable = () => Object.assign(new Error('unavailable'), { $metadata: { httpStatusCode: 503 } });

  it('leaves no timer behind once the call ends, answered or not (a CLI exits at once)', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    await withStoreRetry(async () => 'ok', { budgetMs: 60_000 });
    await expect(withStoreRetry(async () => Promise.reject(new Error('denied')), { budgetMs: 60_000 })).rejects.toThrow('denied');
    expect(timers()).toBe(before);
  });

  it('waits for real with the default sleep', async () => {
    let calls = 0;
    const started = performance.now();
    await withStoreRetry(
      async () => {
        if (++calls === 1) throw unavailable();
        return 'ok';
      },
      { budgetMs: 60_000, baseDelayMs: 40, random: () => 1 },
    );
    // Timers never fire early: the 40 ms wait is a lower bound on any machine.
    expect(performance.now() - started).toBeGreaterThanOrEqual(39);
  });

  it("reads an HTTP-date Retry-After against the policy's clock, and takes Retry-After only from a throttling answer", async () => {
    const t = fakeTime();
    t.time.now = Date.parse('2026-11-27T10:00:00Z');
    let calls = 0;
    const dated = Object.assign(new Error('slow down'), { statusCode: 429, headers: { 'retry-after': 'Fri, 27 Nov 2026 10:00:01 GMT' } });
    const down = Object.assign(unavailable(), { headers: { 'retry-after': '1' } });
    await withStoreRetry(
      async () => {
        calls++;
        if (calls === 1) throw dated;
        if (calls === 2) throw down;
        return 'ok';
      },
      { budgetMs: 60_000, baseDelayMs: 100, ...t },
    );
    expect(t.time.waits).toEqual([1_000, 100]);
  });

  it("gives a paced attempt the store's time left, counts the waits between attempts, and holds the clock until the pace returns", async () => {
    const t = fakeTime();
    const budgets: number[] = [];
    let calls = 0;
    await expect(
      withStoreRetry(
        async (_signal, _number, remainingMs) => {
          calls++;
          budgets.push(remainingMs);
          throw unavailable();
        },
        { budgetMs: 1_000, attempts: 10, baseDelayMs: 300, maxDelayMs: 300, ...t, random: () => 1, pace: (send) => send() },
      ),
    ).rejects.toThrow('unavailable');
    expect(calls).toBe(4);
    expect(budgets).toEqual([1_000, 700, 400, 100]);
    // A pace that records for a second after its send returns: that second is the client's, not the store's.
    const clock = starvedClock(0);
    const call = withStoreRetry(async () => 'written', {
      budgetMs: 200,
      now: clock.now,
      setTimer: clock.setTimer,
      pace: async (send) => {
        const result = await send();
        await new Promise((resolve) => clock.setTimer(() => resolve(undefined), 1_000));
        return result;
      },
    });
    await clock.run(call);
    await expect(call).resolves.toBe('written');
  });

  it("takes the time the pace held a call off the store's time once, however late the process woke meanwhile", async () => {
    // Every wake-up 100 ms late; the pace holds the call 1 s (its timer fires at 1100), then the store never answers.
    const clock = starvedClock(100);
    const call = withStoreRetry(() => new Promise(() => {}), {
      budgetMs: 200,
      ceilingMs: 60_000,
      now: clock.now,
      setTimer: clock.setTimer,
      pace: async (send) => {
        await new Promise((resolve) => clock.setTimer(() => resolve(undefined), 1_000));
        return send();
      },
    });
    const endedAt = await clock.run(call);
    await expect(call).rejects.toMatchObject({ message: 'no answer within 200 ms' });
    // From 1100, a tick every 150 ms of which 50 are the store's: 200 ms of store time at 1800.
    expect(endedAt).toBe(1_800);
  });

  it('tells a gRPC error that is not UNAVAILABLE (NOT_FOUND, with details) as final', () => {
    expect(classifyStoreError(Object.assign(new Error('5 NOT_FOUND'), { code: 5, details: 'no such secret' }))).toBe('final');
  });

  it('skips a status field that holds a string', () => {
    expect(classifyStoreError(Object.assign(new Error('x'), { statusCode: '503', status: 429 }))).toBe('throttled');
  });
});

describe('operationDeadline (virtual time)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives the store time left, at least 1 ms, and aborts when the budget is spent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const deadline = operationDeadline(500);
    expect(deadline.pace).toBeUndefined();
    expect(deadline.remainingMs()).toBe(500);
    await vi.advanceTimersByTimeAsync(200);
    expect(deadline.remainingMs()).toBe(300);
    await vi.advanceTimersByTimeAsync(299);
    expect(deadline.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.signal.reason).toMatchObject({ name: 'TimeoutError', message: 'no answer within 500 ms' });
    expect(deadline.remainingMs()).toBe(1);
  });

  it('stops while the pace holds a call, counts the time its send runs, and holds while any call is held', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const pace: Pace = async (send) => {
      await wait(1_000);
      return send();
    };
    const deadline = operationDeadline(500, pace);
    const paced = deadline.pace ?? pace;
    const first = paced(() => wait(100));
    await vi.advanceTimersByTimeAsync(400);
    // A second call while the first is held: the deadline stays held until both are sent.
    const second = paced(() => wait(100));
    await vi.advanceTimersByTimeAsync(600);
    expect(deadline.remainingMs()).toBe(500);
    await vi.advanceTimersByTimeAsync(100);
    await first;
    // The first one's send ran 100 ms while the second was still held: still held.
    expect(deadline.remainingMs()).toBe(500);
    await vi.advanceTimersByTimeAsync(400);
    await second;
    expect(deadline.remainingMs()).toBe(400);
    await vi.advanceTimersByTimeAsync(399);
    expect(deadline.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(deadline.signal.aborted).toBe(true);
  });
});

describe('classifyStoreError: which answers are worth another attempt', () => {
  const error = (fields: object) => Object.assign(new Error('x'), fields);

  it('retries a dropped connection by its code, even when the AWS SDK names it TimeoutError', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'EAI_AGAIN', 'ETIMEDOUT', 'UND_ERR_SOCKET']) {
      expect(classifyStoreError(error({ code })), code).toBe('transient');
    }
    expect(classifyStoreError(error({ name: 'TimeoutError', code: 'ECONNRESET' }))).toBe('transient');
    expect(classifyStoreError(error({ code: 'ENOTFOUND' }))).toBe('final');
  });

  it('does not retry once the time is spent (our budget, or the caller aborted), whatever the status', () => {
    expect(classifyStoreError(error({ name: 'TimeoutError', statusCode: 503 }))).toBe('final');
    expect(classifyStoreError(error({ name: 'AbortError', statusCode: 429 }))).toBe('final');
  });

  it('knows every throttling name the SDKs use', () => {
    for (const name of [
      'ThrottlingException',
      'Throttling',
      'TooManyRequestsException',
      'RequestLimitExceeded',
      'ProvisionedThroughputExceededException',
      'TooManyRequests',
    ]) {
      expect(classifyStoreError(error({ name })), name).toBe('throttled');
    }
  });

  it('reads the HTTP status from any SDK field and retries 500, 502, 503 and 504, not 501', () => {
    for (const fields of [
      { $metadata: { httpStatusCode: 503 } },
      { statusCode: 503 },
      { status: 503 },
      { response: { status: 503 } },
      { response: { statusCode: 503 } },
    ]) {
      expect(classifyStoreError(error(fields)), JSON.stringify(fields)).toBe('transient');
    }
    for (const status of [500, 502, 504]) expect(classifyStoreError(error({ statusCode: status }))).toBe('transient');
    expect(classifyStoreError(error({ statusCode: 501 }))).toBe('final');
  });

  it('takes the first field that holds an HTTP status (100 to 599)', () => {
    expect(classifyStoreError(error({ statusCode: 99, status: 429 }))).toBe('throttled');
    expect(classifyStoreError(error({ statusCode: 600, status: 503 }))).toBe('transient');
    expect(classifyStoreError(error({ statusCode: 100, status: 429 }))).toBe('final');
    expect(classifyStoreError(error({ statusCode: 599, status: 429 }))).toBe('final');
    expect(classifyStoreError(error({ statusCode: '429' }))).toBe('final');
  });

  it('reads gRPC codes only from a gRPC error (one with details), not from a numeric errno', () => {
    expect(classifyStoreError(error({ code: 8 }))).toBe('final');
    expect(classifyStoreError(error({ code: 14 }))).toBe('final');
  });

  it('calls anything that is not an error object final', () => {
    for (const value of [undefined, null, 'ECONNRESET', 429]) expect(classifyStoreError(value)).toBe('final');
  });

  it('sends a call that is not idempotent again only when throttled', () => {
    expect(throttlingOnly(error({ statusCode: 429 }))).toBe('throttled');
    expect(throttlingOnly(error({ statusCode: 503 }))).toBe('final');
    expect(throttlingOnly(error({ statusCode: 400 }))).toBe('final');
  });
});

describe('throttledError and markThrottled (a bulk action slows down and sends the row again)', () => {
  it('knows a mapped error marked throttled, with the wait the store asked for, and a raw throttling answer', () => {
    const marked = markThrottled(new Error('AWS is throttling requests'), 2_000);
    expect(throttledError(marked)).toBe(true);
    expect(retryAfterMs(marked)).toBe(2_000);
    const unmarked = markThrottled(new Error('AWS is throttling requests'));
    expect(throttledError(unmarked)).toBe(true);
    expect('retryAfterMs' in unmarked).toBe(false);
    expect(throttledError(Object.assign(new Error('x'), { statusCode: 429 }))).toBe(true);
  });

  it('is false for any other error, a mark that is not exactly true, and no error', () => {
    expect(throttledError(new Error('denied'))).toBe(false);
    expect(throttledError(Object.assign(new Error('x'), { throttled: 'yes' }))).toBe(false);
    expect(throttledError(undefined)).toBe(false);
    expect(throttledError(null)).toBe(false);
  });
});

describe('retryAfterMs: how long the store asked to wait', () => {
  it('takes a marked wait first, when it is a number of 0 or more', () => {
    expect(retryAfterMs({ retryAfterMs: 0, headers: { 'retry-after': '5' } })).toBe(0);
    expect(retryAfterMs({ retryAfterMs: -1, headers: { 'retry-after': '5' } })).toBe(5_000);
    expect(retryAfterMs({ retryAfterMs: '250', headers: { 'retry-after': '5' } })).toBe(5_000);
  });

  it('reads whole or decimal seconds, with spaces around them, and a date in the past as 0', () => {
    expect(retryAfterMs({ headers: { 'retry-after': ' 2 ' } })).toBe(2_000);
    expect(retryAfterMs({ headers: { 'retry-after': '1.5' } })).toBe(1_500);
    const now = Date.parse('2026-11-27T10:00:00Z');
    expect(retryAfterMs({ headers: { 'retry-after': 'Fri, 27 Nov 2026 09:59:00 GMT' } }, now)).toBe(0);
    expect(retryAfterMs({ headers: { 'retry-after': 'soon' } })).toBeUndefined();
    expect(retryAfterMs({ headers: { 'retry-after': '1.25' } })).toBe(1_250);
    expect(retryAfterMs({ headers: { 'retry-after': 'x5' } })).toBeUndefined();
    expect(retryAfterMs({ headers: { 'retry-after': '5x' } })).toBeUndefined();
  });

  it('prefers retry-after-ms when it is a whole number, else falls back to Retry-After', () => {
    expect(retryAfterMs({ headers: { 'retry-after-ms': '250', 'retry-after': '5' } })).toBe(250);
    expect(retryAfterMs({ headers: { 'retry-after-ms': '2.5', 'retry-after': '5' } })).toBe(5_000);
    expect(retryAfterMs({ headers: { 'retry-after-ms': 'x1', 'retry-after': '5' } })).toBe(5_000);
  });

  it("reads the AWS SDK's headers, then a response's, then the error's own, and the first value of a list", () => {
    expect(
      retryAfterMs({
        $response: { headers: { 'retry-after': '1' } },
        response: { headers: { 'retry-after': '2' } },
        headers: { 'retry-after': '3' },
      }),
    ).toBe(1_000);
    expect(
      retryAfterMs({ $response: { headers: {} }, response: { headers: { 'retry-after': '2' } }, headers: { 'retry-after': '3' } }),
    ).toBe(2_000);
    expect(retryAfterMs({ response: { headers: 'retry-after: 2' }, headers: { 'Retry-After': ['4', '9'] } })).toBe(4_000);
    expect(retryAfterMs({ headers: { 'retry-after': 4 } })).toBeUndefined();
    expect(retryAfterMs({ headers: { get: () => null } })).toBeUndefined();
  });

  it('reads a gRPC retry-delay-ms and a RetryInfo with only seconds or only nanos', () => {
    expect(retryAfterMs({ metadata: { get: (key: string) => (key === 'retry-delay-ms' ? ['300'] : []) } })).toBe(300);
    expect(retryAfterMs({ metadata: { get: () => ['3s'] } })).toBeUndefined();
    expect(retryAfterMs({ metadata: { get: () => ['x300'] } })).toBeUndefined();
    expect(retryAfterMs({ metadata: { get: () => undefined } })).toBeUndefined();
    expect(retryAfterMs({ metadata: {} })).toBeUndefined();
    expect(retryAfterMs({ metadata: { get: () => [] }, statusDetails: [null, { retryDelay: { seconds: 2 } }] })).toBe(2_000);
    expect(retryAfterMs({ statusDetails: [{ retryDelay: { nanos: 250_000_000 } }] })).toBe(250);
  });

  it('says nothing for what is not an error object', () => {
    expect(retryAfterMs(undefined)).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
    expect(retryAfterMs({ $response: { headers: null }, headers: { 'retry-after': '2' } })).toBe(2_000);
    expect(retryAfterMs('retry-after: 5')).toBeUndefined();
  });
});
