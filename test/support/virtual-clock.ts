// Virtual time for code that takes a clock ({ now, sleep }): sleeps resolve in time order, and
// time jumps to the next one once nothing else can run. Concurrent waiters see one consistent
// clock, so a minute of a rate-limited run takes milliseconds and the same run gives the same times.
export interface VirtualClock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Runs until `work` settles, moving time forward whenever every task waits on a sleep. */
  run<T>(work: Promise<T>): Promise<T>;
}

export function virtualClock(start = 0): VirtualClock {
  let now = start;
  let sequence = 0;
  const timers: { at: number; order: number; wake: () => void }[] = [];
  const settleMicrotasks = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    now: () => now,
    sleep: (ms) => new Promise<void>((wake) => void timers.push({ at: now + Math.max(0, ms), order: sequence++, wake })),
    async run(work) {
      let settled = false;
      const watched = work.finally(() => void (settled = true));
      watched.catch(() => {});
      for (;;) {
        await settleMicrotasks();
        if (settled) return watched;
        timers.sort((a, b) => a.at - b.at || a.order - b.order);
        const next = timers.shift();
        if (!next) throw new Error('virtual clock: every task waits, and on no sleep');
        now = next.at;
        next.wake();
      }
    },
  };
}
