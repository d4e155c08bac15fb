// Refresh-ahead with the real binary: a get near refreshAfter answers at warm speed while a
// detached run re-reads the store, and that run does not hold the caller's pipes open.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { adminPut, developer, startStoreChain, type Developer, type StoreChain } from './e2e-world.ts';
import { DEFAULT_UNITS, expectWithinBound, processStart, waitWithinBound } from '../support/time-bounds.ts';

let chain: StoreChain;
let dev: Developer;
beforeAll(async () => {
  chain = await startStoreChain();
  await adminPut(chain.moto, 'sk-test-ahead-one');
});
afterAll(async () => chain?.stop());
afterEach(() => {
  chain.counter.delay(0);
  dev?.remove();
});

it('serves the cached key at once near refreshAfter and refreshes it in a detached process', async () => {
  // A store timeout long enough for the slow store below: the background run must get its answer.
  dev = developer(chain.counter.url, { timeout: '5m', cache: { backend: 'file', refreshAfter: '10m' } });
  expect((await dev.get()).code).toBe(0);
  const [file] = dev.cacheFiles();
  await adminPut(chain.moto, 'sk-test-ahead-two');

  // The store answers slowly, far slower than a warm get takes here: a get that waited for the
  // refresh (or for its pipes) would show it.
  const yardstick = await processStart();
  const storeDelayMs = Math.max(2_500, 4 * DEFAULT_UNITS * yardstick.unitMs);
  chain.counter.delay(storeDelayMs);
  const reads = chain.counter.count('GetSecretValue');
  // Aged to 9 of its 10 minutes, past the 80 % where refresh-ahead starts, right before the get:
  // no sleeping through a window that a slow machine could overshoot.
  const entry = JSON.parse(fs.readFileSync(file!, 'utf8'));
  fs.writeFileSync(file!, JSON.stringify({ ...entry, fetchedAt: Date.now() - 9 * 60_000 }));
  const served = await dev.get();
  expect(served).toMatchObject({ code: 0, stdout: 'sk-test-ahead-one', stderr: '' });
  // This get is a warm get and the start of a second process (the detached refresh), which runs on
  // the same cores while this one ends: twice the units of a warm get. A wait on the store or on
  // the child's pipes is the store's delay, far above either bound.
  await expectWithinBound('a get near refreshAfter (a warm get that also starts the refresh)', served.ms, 0, yardstick, 2 * DEFAULT_UNITS);
  expect(served.ms).toBeLessThan(storeDelayMs);

  // The detached run reads the store once and caches the new key: a cold get's work after the store's delay.
  const cachedKey = () => JSON.parse(fs.readFileSync(file!, 'utf8')).key;
  await waitWithinBound('the detached refresh caching the new key', () => cachedKey() === 'sk-test-ahead-two', storeDelayMs, yardstick);
  expect(chain.counter.count('GetSecretValue') - reads).toBe(1);
  const after = await dev.get();
  expect(after).toMatchObject({ code: 0, stdout: 'sk-test-ahead-two' });
  expect(chain.counter.count('GetSecretValue') - reads).toBe(1);
});
