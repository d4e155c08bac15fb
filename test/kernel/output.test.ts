import { describe, expect, it } from 'vitest';
import { maskSecrets } from '../../src/kernel/output.ts';

// What reaches stderr from a debug trace, an internal error or doctor never holds a key,
// whatever the key's vendor prefix (hardening item 5: not only `sk-`).
describe('maskSecrets', () => {
  const keys = [
    'sk-test-0123456789abcdef',
    'glpat-TESTONLY0a1b2c3d4e5f6g7h',
    'TESTONLYx9Q2mZ7pL4vR8kT1wY6n', // no prefix at all
    'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0LW9ubHktdXNlciJ9.c2lnbmF0dXJlLXRlc3Qtb25seQ', // a JWT
    'aGVsbG8tdGVzdC1vbmx5LWJhc2U2NA==', // base64
  ];

  for (const key of keys) {
    it(`masks ${key.slice(0, 6)}… in a sentence, none of its long runs left`, () => {
      const masked = maskSecrets(`request failed: {"api_key":"${key}"} at step 2`);
      expect(masked).not.toContain(key);
      for (const run of key.split(/[^A-Za-z0-9_\-+/=]/).filter((part) => part.length >= 12)) expect(masked).not.toContain(run);
      expect(masked).toContain('request failed');
      expect(masked).toContain('at step 2');
    });
  }

  it('masks a value the caller knows even when it looks like nothing', () => {
    expect(maskSecrets('the key was plainword here', ['plainword'])).toBe('the key was ‹key› here');
  });

  it('leaves ordinary words, paths, numbers and exit codes readable', () => {
    const line = 'cannot reach https://secretsmanager.us-east-1.amazonaws.com after 3 tries (exit 7): ECONNREFUSED /home/dev/.config/keybroker/config.json';
    expect(maskSecrets(line)).toBe(line);
  });
});

describe('maskSecrets on addresses', () => {
  it('keeps a URL path readable and masks a key in its query', () => {
    const masked = maskSecrets('307 redirect to https://login.example.invalid/v1/models?token=TESTONLYx9Q2mZ7pL4vR8kT1');
    expect(masked).toContain('https://login.example.invalid/v1/models?');
    expect(masked).not.toContain('x9Q2mZ7pL4vR8kT1');
  });

  it('masks a base64 key that holds a slash', () => {
    expect(maskSecrets('value aGVsbG8/dGVzdC1vbmx5LWJhc2U2NA== end')).toBe('value … end');
  });
});
