// The core of `get`: cache → (lock) → store → cache, written once. It takes its store, cache,
// clock and lock as arguments, so every rule here is tested without I/O.
import { sha256Hex } from './sha256.ts';
import type { Profile } from './config.ts';
import { CacheUnavailable, UnusableKey, isTransientStoreFailure } from './errors.ts';
import { parseSecretValue } from './key-value.ts';
import { resolveSecretName } from './secret-name.ts';
import { formatDuration } from './duration.ts';
import type { CacheStore } from './cache/cache-store.ts';
import { parseEntry, serializeEntry, type CacheEntry } from './cache/entry.ts';
import type { Lock } from './lock.ts';
import type { Provider } from '../providers/provider.ts';

export interface BrokerDeps {
  profile: Profile;
  cache: CacheStore;
  /** Opens the store; called only when the cache cannot answer, so the SDK loads only then. */
  openProvider(): Promise<Provider>;
  lock: Lock;
  now(): number;
  osUser(): string;
  /** Claude Code's own cache lifetime (CLAUDE_CODE_API_KEY_HELPER_TTL_MS). */
  callerTtlMs: number;
  warn(line: string): void;
  debug(message: string): void;
}

export type Served = CacheEntry & { from: 'cache' | 'store' | 'stale-cache' };

export interface GetOptions {
  /** Skip a fresh cached key and ask the store (the caller was just refused with a 401). */
  recheck?: boolean;
}

/** Fixed slack for clocks and for the time a request takes after the key was handed out. */
export const CLOCK_SLACK_MS = 60_000;

export type Freshness = 'fresh' | 'stale' | 'expired';

/**
 * fresh: serve it. stale: refresh, but it may still be served when the store is down.
 * expired: never serve it. A key is treated as expired once Claude Code could still be
 * sending it past its expiry: it keeps a key for its TTL and then sends it once more while the
 * helper re-runs, so the margin is twice that TTL plus slack.
 */
export function assessFreshness(entry: CacheEntry, now: number, refreshAfterMs: number, callerTtlMs: number): Freshness {
  if (entry.expiresAt !== undefined && now >= entry.expiresAt - CLOCK_SLACK_MS) return 'expired';
  const age = now - entry.fetchedAt;
  // A fetch time in the future means the clock moved back: trust nothing about the age.
  if (age < 0 || age >= refreshAfterMs) return 'stale';
  if (entry.expiresAt !== undefined && now >= entry.expiresAt - 2 * callerTtlMs - CLOCK_SLACK_MS) return 'stale';
  return 'fresh';
}

/** The keychain account (or cache file) of a profile: changes when what it reads changes. */
export function cacheAccount(profile: Profile): string {
  const what = JSON.stringify([profile.store, profile.secret, profile.field, profile.user]);
  return `${profile.name}:${sha256Hex(what).slice(0, 12)}`;
}

export async function readCachedEntry(deps: Pick<BrokerDeps, 'cache' | 'profile' | 'warn' | 'debug'>): Promise<CacheEntry | undefined> {
  let text: string | undefined;
  try {
    text = await deps.cache.read(cacheAccount(deps.profile));
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    deps.warn(`keybroker: ${error.line()}`);
    return undefined;
  }
  if (text === undefined) return undefined;
  const entry = parseEntry(text);
  if (!entry) deps.debug('the cached entry is not readable; it will be replaced');
  return entry;
}

export async function getKey(deps: BrokerDeps, options: GetOptions = {}): Promise<Served> {
  const { profile } = deps;
  const startedAt = deps.now();
  const cached = await readCachedEntry(deps);
  if (cached && !options.recheck && assessFreshness(cached, startedAt, profile.cache.refreshAfterMs, deps.callerTtlMs) === 'fresh') {
    return { ...cached, from: 'cache' };
  }

  const account = cacheAccount(profile);
  const release = await deps.lock.acquire(account, profile.timeoutMs + 6_000);
  if (!release) deps.debug('did not get the refresh lock in time; reading the store without it');
  try {
    // Another process may have refreshed while this one waited for the lock.
    const latest = release ? await readCachedEntry(deps) : cached;
    if (latest && latest.fetchedAt >= startedAt && assessFreshness(latest, deps.now(), profile.cache.refreshAfterMs, deps.callerTtlMs) === 'fresh') {
      return { ...latest, from: 'cache' };
    }
    const usable = [latest, cached].find(
      (entry): entry is CacheEntry => entry !== undefined && assessFreshness(entry, deps.now(), profile.cache.refreshAfterMs, deps.callerTtlMs) !== 'expired',
    );
    let entry: CacheEntry;
    try {
      entry = await fetchFromStore(deps);
    } catch (error) {
      if (usable && isTransientStoreFailure(error)) {
        deps.warn(`keybroker: ${(error as Error).message}; serving the cached key read ${formatDuration(deps.now() - usable.fetchedAt)} ago`);
        return { ...usable, from: 'stale-cache' };
      }
      throw error;
    }
    if (assessFreshness(entry, deps.now(), profile.cache.refreshAfterMs, deps.callerTtlMs) === 'expired') {
      throw new UnusableKey(
        `the key in secret "${entry.secret}" expired at ${new Date(entry.expiresAt!).toISOString()} (or expires within a minute)`,
        'ask your admin to rotate it (keybroker admin rotate)',
      );
    }
    try {
      await deps.cache.write(account, serializeEntry(entry));
    } catch (error) {
      if (!(error instanceof CacheUnavailable)) throw error;
      deps.warn(`keybroker: the key was not cached: ${error.line()}`);
    }
    return { ...entry, from: 'store' };
  } finally {
    await release?.();
  }
}

export async function fetchFromStore(deps: Pick<BrokerDeps, 'profile' | 'openProvider' | 'osUser' | 'now'>): Promise<CacheEntry> {
  const { profile } = deps;
  const provider = await deps.openProvider();
  const user = profile.user === 'store' ? (await provider.whoami()).user : deps.osUser();
  const secret = resolveSecretName(profile.secret, user, profile.user === 'store' ? `the store identity (${provider.describe()})` : 'the OS login');
  const current = await provider.readCurrent(secret);
  const parsed = parseSecretValue(current.value, profile.field, `secret "${secret}"`);
  const expiries = [parsed.expiresAt?.getTime(), current.expiresAt?.getTime()].filter((time): time is number => time !== undefined);
  const entry: CacheEntry = { key: parsed.key, version: current.version, secret, fetchedAt: deps.now() };
  if (expiries.length) entry.expiresAt = Math.min(...expiries);
  return entry;
}
