// A cached entry as text: what is written, and what a read takes for one. Anything else (a
// corrupt, planted or older-format entry) is as absent: the store is read and the entry replaced.
import { describe, expect, it } from 'vitest';
import { parseEntry, serializeEntry, type CacheEntry } from '../../src/cache/entry.ts';

const entry: CacheEntry = { key: 'sk-test-one', version: 'v1', secret: 'claude-code/keys/alice', fetchedAt: 1_700_000_000_000 };

describe('a cache entry', () => {
  it('round-trips, with and without an expiry (no expiry means none, not undefined)', () => {
    expect(JSON.parse(serializeEntry(entry))).toEqual({ v: 1, ...entry });
    expect(parseEntry(serializeEntry(entry))).toStrictEqual(entry);
    const expiring = { ...entry, expiresAt: 1_700_000_600_000 };
    expect(parseEntry(serializeEntry(expiring))).toStrictEqual(expiring);
  });

  it.each([
    ['text that is not JSON', '{"v":1,'],
    ['null', 'null'],
    ['a number', '5'],
    ['an array', '[1]'],
    ['another format version', JSON.stringify({ ...entry, v: 2 })],
    ['no format version', JSON.stringify(entry)],
    ['an empty key', JSON.stringify({ v: 1, ...entry, key: '' })],
    ['a key that is not text', JSON.stringify({ v: 1, ...entry, key: 42 })],
    ['a version that is not text', JSON.stringify({ v: 1, ...entry, version: 1 })],
    ['a secret that is not text', JSON.stringify({ v: 1, ...entry, secret: null })],
    ['a fetch time that is not a number', JSON.stringify({ v: 1, ...entry, fetchedAt: '2026-11-27' })],
    ['a fetch time that is not finite', `{"v":1,"key":"k","version":"v","secret":"s","fetchedAt":1e999}`],
    ['an expiry that is not a number', JSON.stringify({ v: 1, ...entry, expiresAt: 'never' })],
    ['an expiry that is not finite', `{"v":1,"key":"k","version":"v","secret":"s","fetchedAt":1,"expiresAt":1e999}`],
  ])('%s is not an entry', (_what, text) => {
    expect(parseEntry(text)).toBeUndefined();
  });
});
