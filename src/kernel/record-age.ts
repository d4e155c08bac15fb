// One rule for the age of anything stamped with this machine's wall clock: cache entries' records,
// markers, lock files. A stamp from the future (the clock was set back, or the file was planted)
// says nothing about how old the record is: the record is ignored, never taken as young.

/**
 * A file's modification time has sub-millisecond precision and Date.now() whole milliseconds: a file
 * looked at within the millisecond it was written can be "ahead" by a fraction. Up to this much
 * ahead is the clocks' granularity, not the future.
 */
export const FILE_TIME_GRACE_MS = 1_000;

/** How old a record stamped `at` is at `now` (ms, ≥ 0), or undefined when it is from the future. */
export function recordAgeMs(at: number, now: number, graceMs = 0): number | undefined {
  const age = now - at;
  if (!Number.isFinite(age) || age < -graceMs) return undefined;
  return Math.max(0, age);
}
