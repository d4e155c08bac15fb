import { describe, expect, it } from 'vitest';
import { checkKey, fingerprint, keyProblem, parseSecretValue, rfc3339Time, MAX_KEY_LENGTH } from '../../src/secret/value.ts';
import { UnusableKey } from '../../src/kernel/errors.ts';

describe('the secret value', () => {
  it('is the key itself, trimmed as Claude Code trims it', () => {
    expect(parseSecretValue('  sk-test-raw\n', 'api_key', 'secret "x"')).toEqual({ key: 'sk-test-raw' });
  });

  it('is a JSON object with the key in the configured field and an optional expires_at', () => {
    const parsed = parseSecretValue('{"token":"sk-test-json","expires_at":"2030-01-02T03:04:05Z","team":"ml"}', 'token', 'secret "x"');
    expect(parsed.key).toBe('sk-test-json');
    expect(parsed.expiresAt?.toISOString()).toBe('2030-01-02T03:04:05.000Z');
  });

  it('names the missing field and the fields that are there, never their values', () => {
    const error = catchError(() => parseSecretValue('{"key":"sk-test-hidden","note":"x"}', 'api_key', 'secret "x"'));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toContain('"api_key"');
    expect(error.message).toContain('key, note');
    expect(error.message).not.toContain('sk-test-hidden');
  });

  it('refuses JSON that does not parse, a non-object, and an expires_at that is not RFC 3339', () => {
    expect(catchError(() => parseSecretValue('{"api_key": sk-test', 'api_key', 's'))).toBeInstanceOf(UnusableKey);
    expect(catchError(() => parseSecretValue('{"api_key": 5}', 'api_key', 's')).message).toContain('no string field');
    expect(catchError(() => parseSecretValue('{"api_key":"sk-test-a","expires_at":"tomorrow"}', 'api_key', 's')).message).toContain(
      'RFC 3339',
    );
  });

  it('says what to store instead, with the configured field, for each way the JSON is wrong', () => {
    expect(fixOf(() => parseSecretValue('  {"token": sk-test', 'token', 'secret "x"'))).toEqual({
      message: `the value of secret "x" starts with '{' but is not valid JSON`,
      fix: 'store the key itself, or a JSON object such as {"token": "sk-..."}',
    });
    expect(fixOf(() => parseSecretValue('[1]', 'token', 'secret "x"')).fix).toBe('store the key itself, or {"token": "sk-..."}');
    expect(fixOf(() => parseSecretValue('{"token": 5}', 'token', 'secret "x"'))).toEqual({
      message: 'the JSON value of secret "x" has no string field "token"',
      fix: 'put the key in "token", or set "field" in the keybroker profile to the field that holds it',
    });
    expect(fixOf(() => parseSecretValue(7, 'token', 'secret "x"')).fix).toBe(
      `store the key as text (or a JSON object such as {"token": "sk-..."}) with 'keybroker admin put'`,
    );
    expect(fixOf(() => parseSecretValue('{"token":"sk-test-a","expires_at":"tomorrow"}', 'token', 'secret "x"'))).toEqual({
      message: 'the "expires_at" of secret "x" is not an RFC 3339 time (or names a day or hour that does not exist)',
      fix: 'write it like "2026-12-31T23:59:59Z", or remove it',
    });
    expect(fixOf(() => parseSecretValue('{"token":"sk-test-a","expires_at":1893456000}', 'token', 'secret "x"')).message).toContain(
      'is not an RFC 3339 time',
    );
    expect(
      fixOf(() => parseSecretValue('{"token":"sk-test-a","expires_at":["2026-12-31T23:59:59Z"]}', 'token', 'secret "x"')).message,
    ).toContain('is not an RFC 3339 time');
  });

  it('names at most five of the fields that are there', () => {
    const value = JSON.stringify({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 });
    expect(catchError(() => parseSecretValue(value, 'api_key', 'secret "x"')).message).toBe(
      'the JSON value of secret "x" has no string field "api_key" (fields present: a, b, c, d, e)',
    );
  });

  it('has no expiry when the JSON object has no expires_at', () => {
    expect(parseSecretValue('{"api_key":"sk-test-json"}', 'api_key', 's')).toEqual({ key: 'sk-test-json' });
  });

  it('trims the key in the JSON field, and takes an expires_at of null as none', () => {
    expect(parseSecretValue(JSON.stringify({ api_key: ' sk-test-json\n', expires_at: null }), 'api_key', 's')).toEqual({
      key: 'sk-test-json',
    });
  });
});

describe('a value that would print something Claude Code cannot use', () => {
  it.each([
    ['[1,2]', 'an array'],
    ['null', 'null'],
    ['123', 'a number'],
    ['"sk-test-quoted"', 'a string in quotes'],
    [' true\n', 'a boolean'],
  ])('%j is JSON but not an object: refused, never served as the key', (raw, kind) => {
    const error = catchError(() => parseSecretValue(raw, 'api_key', 'secret "x"'));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toBe(`the value of secret "x" is JSON (${kind}) but not an object`);
    expect(error.message).not.toContain('sk-test-quoted');
  });

  it.each([
    [123, 'a number'],
    [true, 'a boolean'],
    [{ api_key: 'sk-test-object' }, 'an object'],
    [['sk-test-array'], 'an array'],
    [null, 'null'],
    [undefined, 'no value (undefined)'],
  ])('a store answer %j that is not text is an unusable value', (raw, kind) => {
    const error = catchError(() => parseSecretValue(raw, 'api_key', 'secret "x"'));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toBe(`the store answered secret "x" with ${kind} where the value's text belongs`);
  });

  it.each([
    ['sk-test-a b', 'a space at position 10'],
    ['sk-test-a\nb', 'a line break at position 10'],
    ['sk-test-\u007f', 'a control character (U+007F) at position 9'],
  ])('a JSON field holding %j is checked like a bare key', (key, problem) => {
    const error = catchError(() => parseSecretValue(JSON.stringify({ api_key: key }), 'api_key', 'secret "x"'));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toBe(`the value of secret "x" is not a usable key: it contains ${problem}`);
  });

  it('a bare key that is not JSON, even one starting with "[", is still a key', () => {
    expect(parseSecretValue('[sk-test-bracket', 'api_key', 's')).toEqual({ key: '[sk-test-bracket' });
  });
});

describe('a key Claude Code would reject', () => {
  it.each([
    ['', 'it is empty'],
    ['sk-test-a\nb', 'a line break at position 10'],
    ['sk-test-a\rb', 'a line break at position 10'],
    ['sk-test a', 'a space at position 8'],
    ['sk-test\ta', 'a tab at position 8'],
    ['sk-test\u0007', 'a control character (U+0007) at position 8'],
    ['sk-test\u001f', 'a control character (U+001F) at position 8'],
    ['sk-test\u007f', 'a control character (U+007F) at position 8'],
    ['sk-test\u0080', 'a non-ASCII character at position 8'],
    ['sk-test-é', 'a non-ASCII character at position 9'],
    ['x'.repeat(MAX_KEY_LENGTH + 1), `${MAX_KEY_LENGTH + 1} characters long`],
  ])('%j: %s', (key, problem) => {
    expect(keyProblem(key)).toContain(problem);
    const error = catchError(() => checkKey(key, 'secret "claude-code/keys/alice"'));
    expect(error).toBeInstanceOf(UnusableKey);
    expect(error.message).toBe(`the value of secret "claude-code/keys/alice" is not a usable key: ${keyProblem(key)}`);
    expect((error as UnusableKey).fix).toBe('store the key as one token of printable ASCII (no spaces or line breaks)');
  });

  it('says how long a key over the limit is', () => {
    expect(keyProblem('x'.repeat(MAX_KEY_LENGTH + 1))).toBe(`it is ${MAX_KEY_LENGTH + 1} characters long, over the limit of 16384`);
  });

  it('accepts printable ASCII up to the limit', () => {
    expect(keyProblem('x'.repeat(MAX_KEY_LENGTH))).toBeUndefined();
    expect(keyProblem('sk-test-~!@#$%^&*()_+{}|:"<>?')).toBeUndefined();
  });
});

describe('fingerprint', () => {
  it('is the first 8 hex digits of the SHA-256 and does not contain the key', () => {
    expect(fingerprint('sk-test-abc')).toMatch(/^sha256:[0-9a-f]{8}$/);
    expect(fingerprint('sk-test-abc')).not.toBe(fingerprint('sk-test-abd'));
  });
});

function fixOf(call: () => unknown): { message: string; fix: string } {
  const error = catchError(call);
  expect(error).toBeInstanceOf(UnusableKey);
  return { message: error.message, fix: (error as UnusableKey).fix };
}

function catchError(call: () => unknown): Error {
  try {
    call();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}

describe('rfc3339Time (expires_at in a stored value, admin put --expires-at, admin import)', () => {
  it('refuses a day, month, hour or offset that does not exist instead of rolling it over', () => {
    for (const text of [
      '2026-02-30T00:00:00Z',
      '2026-02-29T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-00-10T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T23:60:00Z',
      '2026-01-01T23:59:60Z',
      '2026-01-01T12:00:00+24:00',
      '2026-01-01 12:00:00+24:00',
      '2026-01-01 24:00:00Z',
      '2026-01-01T12:00:00+00:60',
      '2026-01-00T00:00:00Z',
      '2026-1-01T00:00:00Z',
      '2026-01-01X00:00:00Z',
      '2026-01-01T00:00:00',
      '2026-01-01T00:00:00Zjunk',
      'on 2026-01-01T00:00:00Z',
      // With a space for T, JavaScript's Date reads words around a time: the pattern must span the whole text.
      'Thu 2026-01-01 00:00:00Z',
      '2026-01-01 00:00:00Z (UTC)',
      '12026-01-01 00:00:00Z',
    ]) {
      expect(rfc3339Time(text), text).toBeUndefined();
    }
  });
  it('accepts real times, leap days and offsets', () => {
    expect(rfc3339Time('2028-02-29T23:59:59Z')?.toISOString()).toBe('2028-02-29T23:59:59.000Z');
    expect(rfc3339Time('2026-12-31T23:59:59.5+02:00')?.toISOString()).toBe('2026-12-31T21:59:59.500Z');
    expect(rfc3339Time('2026-06-01 08:00:00z')?.toISOString()).toBe('2026-06-01T08:00:00.000Z');
    expect(rfc3339Time('2026-01-01t00:00:00.125-23:59')?.toISOString()).toBe('2026-01-01T23:59:00.125Z');
    expect(rfc3339Time('2026-12-31T00:00:00+00:59')?.toISOString()).toBe('2026-12-30T23:01:00.000Z');
  });
});
