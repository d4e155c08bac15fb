import { expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/kernel/duration.ts';

it('reads the durations configuration uses', () => {
  expect(parseDuration('90s')).toBe(90_000);
  expect(parseDuration('15m')).toBe(900_000);
  expect(parseDuration('1h30m')).toBe(5_400_000);
  expect(parseDuration('500ms')).toBe(500);
  expect(parseDuration('2d')).toBe(172_800_000);
});

it('refuses what is not a duration', () => {
  for (const text of ['', '15', 'm', '1x', '-5m', '1h 30m', 'soon']) expect(parseDuration(text)).toBeUndefined();
});

it('prints durations for people', () => {
  expect(formatDuration(5_400_000)).toBe('1h30m');
  expect(formatDuration(42)).toBe('42ms');
  expect(formatDuration(61_000)).toBe('1m1s');
});
