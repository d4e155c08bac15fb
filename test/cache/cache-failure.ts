// The CacheUnavailable a cache call fails with (the test fails when it succeeds or fails otherwise).
import { expect } from 'vitest';
import { CacheUnavailable } from '../../src/kernel/errors.ts';

export async function cacheFailure(call: Promise<unknown>): Promise<CacheUnavailable> {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CacheUnavailable);
  return error as CacheUnavailable;
}
