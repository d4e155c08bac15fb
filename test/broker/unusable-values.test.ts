// What `get` hands out is checked whatever its source (store, cache, token endpoint), and a store
// that answers with something unusable is papered over by a still-valid cached key. No I/O.
import { describe, expect, it } from 'vitest';
import { getKey } from '../../src/broker/broker.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { UnusableKey } from '../../src/kernel/errors.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

const profile = testProfile({ refreshAfterMs: 10 * MINUTE });
const account = cacheAccount(profile, () => 'alice');

async function failure(call: Promise<unknown>): Promise<Error> {
  return call.then(
    () => expect.fail('expected a failure'),
    (error: Error) => error,
  );
}

describe('a cached key is checked like a stored one', () => {
  it("a cached key with a space and a line break is not printed: the store's key replaces it", async () => {
    const w = world(profile);
    w.cache.data.set(
      account,
      serializeEntry({ key: 'sk-test-a b\nc', version: 'v0', secret: 'claude-code/keys/alice', fetchedAt: w.clock.now }),
    );
    const served = await getKey(w.deps());
    expect(served).toMatchObject({ key: 'sk-test-one', from: 'store' });
    expect(w.store.reads).toBe(1);
  });

  it('a key from any other source (a token endpoint) that Claude Code would refuse is an unusable key, never served', async () => {
    const w = world(profile);
    const fetchEntry = async () => ({ key: 'sk-test-x\u007f', version: 'v1', secret: 'token', fetchedAt: w.clock.now });
    const error = await failure(getKey(w.deps(undefined, { fetchEntry })));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toMatch(/^the value of secret "token" is not a usable key: .*control character \(U\+007F\) at position 10/);
  });
});

describe('a store answer that is not a usable value', () => {
  it.each([
    ['a number', 123, /with a number where the value's text belongs/],
    ['an object', { api_key: 'sk-test-object' }, /with an object where/],
  ])('SecretString as %s: an unusable value, the still-valid cached key served with a warning', async (_kind, value, message) => {
    const w = world(profile);
    w.cache.data.set(
      account,
      serializeEntry({ key: 'sk-test-cached', version: 'v0', secret: 'claude-code/keys/alice', fetchedAt: w.clock.now - 11 * MINUTE }),
    );
    w.store.value = { value: value as unknown as string, version: 'v1' };
    const served = await getKey(w.deps());
    expect(served).toMatchObject({ key: 'sk-test-cached', from: 'stale-cache' });
    expect(w.warnings).toEqual([expect.stringMatching(message)]);
    expect(w.warnings[0]).toMatch(/; serving the cached key read 11m ago$/);
  });

  it('without a cached key it is exit 8 (UnusableKey), not an internal error', async () => {
    const w = world(profile);
    w.store.value = { value: 123 as unknown as string, version: 'v1' };
    const error = await failure(getKey(w.deps()));
    expect(error).toBeInstanceOf(UnusableKey);
    expect((error as UnusableKey).line()).toMatch(
      /^the store answered secret "claude-code\/keys\/alice" with a number where the value's text belongs: store the key as text/,
    );
  });
});
