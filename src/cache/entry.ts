// A cached key and what is known about it, as stored in the keychain or the cache file.

export interface CacheEntry {
  key: string;
  /** The store's version id. */
  version: string;
  /** The resolved secret name it was read from. */
  secret: string;
  /** When it was read from the store (ms since epoch, this machine's clock). */
  fetchedAt: number;
  /** The earlier of the JSON `expires_at` and the store's own expiry (ms since epoch). */
  expiresAt?: number;
}

export function serializeEntry(entry: CacheEntry): string {
  return JSON.stringify({ v: 1, ...entry });
}

/** The entry, or undefined when the text is not one (a corrupt entry is treated as absent). */
export function parseEntry(text: string): CacheEntry | undefined {
  let data: unknown;
  // Stryker disable BlockStatement: equivalent, without the catch's return `data` stays undefined and has no `v` below
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  // Stryker restore BlockStatement
  // A number, a string or null has no `v` either.
  const record = data as Record<string, unknown> | null;
  if (record?.['v'] !== 1) return undefined;
  const { key, version, secret, fetchedAt, expiresAt } = record;
  if (typeof key !== 'string' || key.length === 0) return undefined;
  if (typeof version !== 'string' || typeof secret !== 'string') return undefined;
  if (!isFiniteNumber(fetchedAt)) return undefined;
  if (expiresAt !== undefined && !isFiniteNumber(expiresAt)) return undefined;
  const entry: CacheEntry = { key, version, secret, fetchedAt };
  if (expiresAt !== undefined) entry.expiresAt = expiresAt;
  return entry;
}

function isFiniteNumber(value: unknown): value is number {
  return Number.isFinite(value);
}
