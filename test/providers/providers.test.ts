import { describe, expect, it } from 'vitest';
import { storeTypes } from '../../providers/index.ts';
import { describeProviderContract } from './contract.ts';
import { harnesses } from './harnesses.ts';

describe('provider registry', () => {
  it('has a contract harness for every store type', () => {
    expect(storeTypes.filter((type) => !harnesses[type])).toEqual([]);
  });
});

for (const type of storeTypes) {
  const harness = harnesses[type];
  if (harness) describeProviderContract(harness);
}
