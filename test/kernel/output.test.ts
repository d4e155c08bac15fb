import { describe, expect, it } from 'vitest';
import { maskSecrets } from '../../src/kernel/output.ts';

// What reaches stderr (error lines, warnings, the debug trace), doctor's report, admin summaries
// and the audit never holds a key, whatever the key's vendor prefix: one mask for all of them.
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
    const line =
      'cannot reach https://secretsmanager.us-east-1.amazonaws.com after 3 tries (exit 7): ECONNREFUSED /home/dev/.config/keybroker/config.json';
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

describe('maskSecrets on names that must stay readable', () => {
  it('keeps absolute paths whose folders are temporary names, and masks a key that is one part of a path', () => {
    const line = 'project settings /tmp/kb-doctor-i6HSRA/project/.claude/settings.json set it';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('read /v1/keys/TESTONLYx9Q2mZ7pL4vR8kT1wY6n/info')).not.toContain('x9Q2mZ7pL4vR8kT1');
  });

  it('keeps words after key- and token- (check ids, endpoints), masks key-/token- with a digit in it', () => {
    const line = 'claude.api-key-helper: the token-endpoint of the key-issuer';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('mailgun key-3ax6xnjp29jd6fds refused')).toBe('mailgun key… refused');
    expect(maskSecrets('sk-test-ahead-one refused')).toBe('sk-… refused');
  });

  it('keeps model names (lower-case words and numbers joined by -), masks a key shaped like one with mixed parts', () => {
    const line = 'claude-sonnet-4-5-20250929: 404 model not routed; claude-3-5-haiku-latest: 200';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('key 550e8400-e29b-41d4-a716-446655440000 refused')).toBe('key … refused');
    expect(maskSecrets('token a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6 refused')).toBe('token … refused');
  });
});

describe('a variable and its value', () => {
  it('keeps the name of NAME_OF_VARIABLE=value and judges the value alone', () => {
    expect(maskSecrets('CI_DEBUG_TRACE=1 turns the trace on')).toBe('CI_DEBUG_TRACE=1 turns the trace on');
    expect(maskSecrets('LITELLM_MASTER_KEY=Zx81mQ27pL04aB9cD3eF is set')).toBe('LITELLM_MASTER_KEY=… is set');
    // Base64 padding is not an assignment: the whole run is judged.
    expect(maskSecrets('QUJDREVGR0gxMjM0NTY3OA==')).toBe('…');
  });
});
