import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/kernel/sha256.ts';

describe('sha256Hex (the hot path hashes without loading node:crypto)', () => {
  const inputs = [
    '',
    'abc',
    'default:["aws","claude-code/keys/{user}"]',
    'é ünïcode ✓',
    'x'.repeat(55),
    'x'.repeat(56),
    'x'.repeat(64),
    'y'.repeat(1000),
  ];
  for (const input of inputs) {
    it(`gives node:crypto's digest for a ${input.length}-character input`, () => {
      expect(sha256Hex(input)).toBe(createHash('sha256').update(input).digest('hex'));
    });
  }
});
