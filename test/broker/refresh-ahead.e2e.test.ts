// Refresh-ahead with the real binary: a get near refreshAfter answers at warm speed while a
// detached run re-reads the store, and that run does not hold the caller's pipes open.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { adminPut, developer, startStoreChain, type Developer, type StoreChain } from './e2e-world.ts';

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
  dev = developer(chain.counter.url, { cache: { backend: 'file', refreshAfter: '5s' } });
  expect((await dev.get()).code).toBe(0);
  const [file] = dev.cacheFiles();
  const fetchedAt = JSON.parse(fs.readFileSync(file!, 'utf8')).fetchedAt as number;
  await adminPut(chain.moto, 'sk-test-ahead-two');
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, fetchedAt + 4_200 - Date.now())));

  // The store answers slowly: a get that waited for the refresh (or for its pipes) would show it.
  chain.counter.delay(2_500);
  const reads = chain.counter.count('GetSecretValue');
  const served = await dev.get();
  expect(served).toMatchObject({ code: 0, stdout: 'sk-test-ahead-one', stderr: '' });
  expect(served.ms).toBeLessThan(1_500);

  const deadline = Date.now() + 10_000;
  while (JSON.parse(fs.readFileSync(file!, 'utf8')).key !== 'sk-test-ahead-two' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(chain.counter.count('GetSecretValue') - reads).toBe(1);
  const after = await dev.get();
  expect(after).toMatchObject({ code: 0, stdout: 'sk-test-ahead-two' });
  expect(chain.counter.count('GetSecretValue') - reads).toBe(1);
});
