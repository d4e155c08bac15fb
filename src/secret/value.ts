// Part src/secret/: the secret's rules: what a stored value means, where a developer's secret lives. May use: kernel.
// What a stored secret value means, and whether Claude Code would accept the key in it.
import { sha256Hex } from '../kernel/sha256.ts';
import { UnusableKey } from '../kernel/errors.ts';

const NOT_JSON: unique symbol = Symbol('not JSON');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

/** What a JSON value is, for a message that must not show it. */
function jsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string in quotes';
  if (typeof value === 'object') return 'an object';
  return typeof value === 'number' || typeof value === 'boolean' ? `a ${typeof value}` : `no value (${typeof value})`;
}

/** Claude Code rejects a helper's output longer than this (SPEC §1). */
export const MAX_KEY_LENGTH = 16_384;

export interface StoredKey {
  key: string;
  /** From the JSON value's `expires_at`, when present. */
  expiresAt?: Date;
}

/**
 * A secret's value is either the key itself or a JSON object holding the key in `field`
 * (and optional `expires_at`). `where` names the secret in messages; the value never appears.
 * `raw` is typed unknown: what a store answers is not checked by its SDK (a number, an object).
 */
export function parseSecretValue(raw: unknown, field: string, where: string): StoredKey {
  if (typeof raw !== 'string') {
    throw new UnusableKey(
      `the store answered ${where} with ${jsonKind(raw)} where the value's text belongs`,
      `store the key as text (or a JSON object such as {"${field}": "sk-..."}) with 'keybroker admin put'`,
    );
  }
  const trimmed = raw.trim();
  const parsed = parseJson(trimmed);
  if (parsed === NOT_JSON) {
    if (!trimmed.startsWith('{')) return { key: checkKey(trimmed, where) };
    throw new UnusableKey(
      `the value of ${where} starts with '{' but is not valid JSON`,
      `store the key itself, or a JSON object such as {"${field}": "sk-..."}`,
    );
  }
  // `[1,2]`, `null`, `123` or `"sk-..."` with its quotes would otherwise be printed as the key.
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UnusableKey(
      `the value of ${where} is JSON (${jsonKind(parsed)}) but not an object`,
      `store the key itself, or {"${field}": "sk-..."}`,
    );
  }
  const record = parsed as Record<string, unknown>;
  const key = record[field];
  if (typeof key !== 'string') {
    const present = Object.keys(record)
      .filter((name) => name !== field)
      .slice(0, 5);
    throw new UnusableKey(
      `the JSON value of ${where} has no string field "${field}"${present.length ? ` (fields present: ${present.join(', ')})` : ''}`,
      `put the key in "${field}", or set "field" in the keybroker profile to the field that holds it`,
    );
  }
  const result: StoredKey = { key: checkKey(key.trim(), where) };
  const expires = record['expires_at'];
  if (expires !== undefined && expires !== null) {
    result.expiresAt = parseRfc3339(expires, where);
  }
  return result;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/** True when every field of an RFC 3339 time is in range: JavaScript reads 2026-02-30 as March 2. */
function inRange(match: RegExpExecArray): boolean {
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const [offsetHour, offsetMinute] = [Number(match[8] ?? 0), Number(match[9] ?? 0)];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, V8's Date refuses these itself (the NaN check in rfc3339Time)
  const alsoCheckedByDate = month >= 1 && month <= 12 && day >= 1 && minute <= 59 && second <= 59 && offsetMinute <= 59;
  // V8 rolls these over instead: 2026-02-30 is March 2, 24:00 the next day, "+24:00" (after a space) a day back.
  return alsoCheckedByDate && day <= daysInMonth && hour <= 23 && offsetHour <= 23;
}

/** An RFC 3339 time whose every field exists, or undefined. */
export function rfc3339Time(text: string): Date | undefined {
  const match = RFC3339.exec(text);
  const date = match && inRange(match) ? new Date(text) : undefined;
  // Stryker disable next-line ConditionalExpression: equivalent while inRange refuses every field Date would; kept so no Invalid Date becomes an expiry
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

function parseRfc3339(value: unknown, where: string): Date {
  const date = typeof value === 'string' ? rfc3339Time(value) : undefined;
  if (!date) {
    throw new UnusableKey(
      `the "expires_at" of ${where} is not an RFC 3339 time (or names a day or hour that does not exist)`,
      `write it like "2026-12-31T23:59:59Z", or remove it`,
    );
  }
  return date;
}

/** The key as Claude Code would send it, or an UnusableKey naming the first problem. */
export function checkKey(key: string, where: string): string {
  const problem = keyProblem(key);
  if (problem) {
    throw new UnusableKey(
      `the value of ${where} is not a usable key: ${problem}`,
      'store the key as one token of printable ASCII (no spaces or line breaks)',
    );
  }
  return key;
}

/** Why Claude Code would reject this token, or undefined when it would accept it. */
export function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'it is empty';
  if (key.length > MAX_KEY_LENGTH) return `it is ${key.length} characters long, over the limit of ${MAX_KEY_LENGTH}`;
  for (let index = 0; index < key.length; index++) {
    const code = key.charCodeAt(index);
    if (code >= 0x21 && code <= 0x7e) continue;
    const position = index + 1;
    if (code === 0x0a || code === 0x0d) return `it contains a line break at position ${position}`;
    if (code === 0x20) return `it contains a space at position ${position}`;
    if (code === 0x09) return `it contains a tab at position ${position}`;
    // Stryker disable next-line EqualityOperator: equivalent, a space (0x20) is answered two lines above
    if (code < 0x20 || code === 0x7f) {
      return `it contains a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')}) at position ${position}`;
    }
    return `it contains a non-ASCII character at position ${position}`;
  }
  return undefined;
}

/** How diagnostics name a key: never the key, only the first 8 hex digits of its SHA-256. */
export function fingerprint(key: string): string {
  return `sha256:${sha256Hex(key).slice(0, 8)}`;
}
