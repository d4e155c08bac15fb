// What `keybroker status` reports: the profile and the state of its cached key, read from the
// cache only (no store, no network).
import { storeOf, type LoadedConfig } from '../config/config.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import { clockSlackFor, expiryMarginMs, profileFreshness, readCachedEntry, type Freshness } from './broker.ts';
import { cacheSlot } from '../cache/account.ts';
import { fingerprint } from '../secret/value.ts';
import { formatDuration } from '../kernel/duration.ts';

export interface CacheStatus {
  profile: string;
  store: string;
  secret: string;
  cacheBackend: { configured: string; inUse: string };
  cached:
    | false
    | {
        fingerprint: string;
        version: string;
        secret: string;
        fetchedAt: string;
        ageMs: number;
        expiresAt?: string;
        freshness: Freshness;
        nextRefreshAt: string;
      };
}

export interface StatusDeps {
  cache: CacheStore;
  now(): number;
  osUser(): string;
  callerTtlMs: number;
}

export async function cacheStatus(config: LoadedConfig, deps: StatusDeps): Promise<CacheStatus> {
  const { profile } = config;
  const entry = await readCachedEntry({ cache: deps.cache, profile, osUser: deps.osUser, warn: () => {}, debug: () => {} });
  const status: CacheStatus = {
    profile: profile.name,
    store: profile.oidc ? `oidc (issuer ${profile.oidc.issuer})` : describeStoreConfig(storeOf(profile)),
    secret: secretName(config, deps, entry?.secret),
    cacheBackend: { configured: profile.cache.backend, inUse: deps.cache.kind },
    cached: false,
  };
  if (!entry) return status;
  const now = deps.now();
  let nextRefresh = entry.fetchedAt + profile.cache.refreshAfterMs;
  if (entry.expiresAt !== undefined)
    nextRefresh = Math.min(nextRefresh, entry.expiresAt - expiryMarginMs(deps.callerTtlMs, clockSlackFor(profile)));
  status.cached = {
    fingerprint: fingerprint(entry.key),
    version: entry.version,
    secret: entry.secret,
    fetchedAt: new Date(entry.fetchedAt).toISOString(),
    ageMs: now - entry.fetchedAt,
    freshness: profileFreshness(entry, now, profile, deps.callerTtlMs),
    nextRefreshAt: new Date(nextRefresh).toISOString(),
  };
  if (entry.expiresAt !== undefined) status.cached.expiresAt = new Date(entry.expiresAt).toISOString();
  return status;
}

/** The secret's name without asking the store: from the OS login, or as last cached. */
function secretName(config: LoadedConfig, deps: StatusDeps, cachedSecret: string | undefined): string {
  const { profile } = config;
  if (!profile.secret.includes('{user}')) return profile.secret;
  // The OS login's name as get caches under it; only the store tells a "user": "store" name.
  return (
    cacheSlot(profile, deps.osUser).secret ??
    cachedSecret ??
    `${profile.secret} ({user} from the store identity, known after the first get)`
  );
}

/** "aws (region us-east-1, endpoint http://…)" from the profile, without loading the provider. */
function describeStoreConfig(store: { type: string; [field: string]: unknown }): string {
  const fields = Object.entries(store)
    .filter(
      ([name, value]) =>
        name !== 'type' && (typeof value === 'string' || typeof value === 'number') && !/secret|token|password/i.test(name),
    )
    .map(([name, value]) => `${name} ${value}`);
  return fields.length ? `${store.type} (${fields.join(', ')})` : store.type;
}

export function formatStatus(status: CacheStatus, now: number): string {
  const rows: [string, string][] = [
    ['profile', status.profile],
    ['store', status.store],
    ['secret', status.secret],
    [
      'cache',
      status.cacheBackend.configured === status.cacheBackend.inUse
        ? status.cacheBackend.inUse
        : `${status.cacheBackend.inUse} (configured: ${status.cacheBackend.configured})`,
    ],
  ];
  const cached = status.cached;
  if (!cached) rows.push(['cached key', "none (the next 'keybroker get' fetches and caches one)"]);
  else {
    rows.push(
      ['cached key', `${cached.fingerprint} (${cached.freshness})`],
      ['version', cached.version],
      ['age', `${formatDuration(cached.ageMs)} (read ${cached.fetchedAt})`],
      ['expires', cached.expiresAt ? `${cached.expiresAt} (in ${formatDuration(Date.parse(cached.expiresAt) - now)})` : 'no expiry set'],
      [
        'next refresh',
        Date.parse(cached.nextRefreshAt) <= now
          ? 'at the next get (due)'
          : `${cached.nextRefreshAt} (in ${formatDuration(Date.parse(cached.nextRefreshAt) - now)})`,
      ],
    );
  }
  const width = Math.max(...rows.map(([name]) => name.length));
  return `${rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n')}\n`;
}
