// Time bounds in tests, relative to this machine in this run. A fixed number of milliseconds
// passes on a fast machine and fails on a slow or busy one (a bare single executable starts in
// 22 ms on one and 80 ms on another, and in seconds while other work runs). What a user waits
// for is bounded instead as: the time keybroker is configured to wait (a store timeout, the
// keychain's 2 s, the retry back-offs), plus a number of yardsticks measured on this machine right
// before. Speed targets belong in bench/, not here.
import { expect } from 'vitest';
import { BINARY, runBinary } from './binary.ts';

export interface Yardstick {
  /** One unit, in ms. */
  unitMs: number;
  /** What a unit is, for messages. */
  unit: string;
  /** The same measurement again (when a bound was missed, the machine may have slowed since). */
  remeasure(): Promise<Yardstick>;
}

/** One process start here and now: the median of three `keybroker --version`. */
export async function processStart(): Promise<Yardstick> {
  const times: number[] = [];
  for (let run = 0; run < 3; run++) {
    const result = await runBinary(['--version'], { env: { PATH: process.env['PATH'] }, command: BINARY });
    expect(result.code).toBe(0);
    times.push(result.ms);
  }
  const unitMs = times.sort((a, b) => a - b)[1]!;
  return { unitMs, unit: 'keybroker --version', remeasure: processStart };
}

/** One run of `call` here and now (an in-process yardstick: a store call the test already makes). */
export async function callTime(unit: string, call: () => Promise<unknown>): Promise<Yardstick> {
  const started = performance.now();
  await call();
  const unitMs = performance.now() - started;
  return { unitMs, unit, remeasure: () => callTime(unit, call) };
}

/**
 * A cold `get` is about four process starts' worth of work (start, cache, the store's SDK chunk,
 * the request: 88.6 ms against a bare start's 22.1 ms in the README's benchmark); ten leaves room
 * for a busy machine without hiding a wait on something keybroker was not told to wait for.
 */
export const DEFAULT_UNITS = 10;

/** The longest the retry policy backs off on transient failures in one call (150 + 300 + 600 ms). */
export const RETRY_BACKOFF_MS = 1_050;

/**
 * Asserts `ms` ≤ `configuredMs` + `units` yardsticks. A miss is judged again against the yardstick
 * measured now, since the machine may have slowed down meanwhile; the slower of the two counts.
 */
export async function expectWithinBound(
  what: string,
  ms: number,
  configuredMs: number,
  yardstick: Yardstick,
  units = DEFAULT_UNITS,
): Promise<void> {
  const bound = (unitMs: number) => configuredMs + units * unitMs;
  if (ms <= bound(yardstick.unitMs)) return;
  const again = await yardstick.remeasure();
  const unitMs = Math.max(yardstick.unitMs, again.unitMs);
  expect(
    ms,
    `${what} took ${Math.round(ms)} ms; bound ${Math.round(bound(unitMs))} ms = ${configuredMs} ms configured + ${units} × ${Math.round(unitMs)} ms (${yardstick.unit} here, now)`,
  ).toBeLessThanOrEqual(bound(unitMs));
}

/**
 * Polls `done` every 100 ms until it holds; fails with a message naming `what` once it has not
 * within `configuredMs` + `units` yardsticks (judged again against a yardstick measured then),
 * instead of running into the test runner's timeout with no message.
 */
export async function waitWithinBound(
  what: string,
  done: () => boolean,
  configuredMs: number,
  yardstick: Yardstick,
  units = DEFAULT_UNITS,
): Promise<void> {
  const started = performance.now();
  let unitMs = yardstick.unitMs;
  let remeasured = false;
  for (;;) {
    if (done()) return;
    const waited = performance.now() - started;
    if (waited > configuredMs + units * unitMs) {
      if (remeasured) {
        expect.fail(
          `${what} did not happen within ${Math.round(waited)} ms = ${Math.round(configuredMs)} ms configured + ${units} × ${Math.round(unitMs)} ms (${yardstick.unit} here, now)`,
        );
      }
      unitMs = Math.max(unitMs, (await yardstick.remeasure()).unitMs);
      remeasured = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
