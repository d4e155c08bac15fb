// `keybroker status`: what the cache alone says about the profile and its key (no store, no network).
import { describe, expect, it } from 'vitest';
import { cacheStatus, formatStatus, type CacheStatus } from '../../src/broker/status.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { serializeEntry, type CacheEntry } from '../../src/cache/entry.ts';
import type { LoadedConfig, Profile } from '../../src/config/config.ts';
import { ConfigError } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { MINUTE, memoryCache, testProfile } from './fakes.ts';

const NOW = Date.parse('2026-11-27T09:00:00Z');
const TTL = 5 * MINUTE;

function configOf(profile: Profile): LoadedConfig {
  return { layers: [], profile, sources: {}, overridden: {}, enforced: [] };
}

/** The status of `profile` with `entry` (if any) in its cache slot, as alice at NOW. */
async function statusWith(profile: Profile, entry?: Partial<CacheEntry>, osUser = () => 'alice'): Promise<CacheStatus> {
  const cache = memoryCache();
  if (entry) {
    const full = { key: 'sk-test-status', version: 'v3', secret: 'claude-code/keys/alice', fetchedAt: NOW - 10 * MINUTE, ...entry };
    cache.data.set(
      cacheAccount(profile, () => 'alice'),
      serializeEntry(full),
    );
  }
  return cacheStatus(configOf(profile), { cache, now: () => NOW, osUser, callerTtlMs: TTL });
}

describe('cacheStatus', () => {
  it('with nothing cached: the profile, its store without secrets, the resolved secret name, the cache backend', async () => {
    const profile = testProfile();
    profile.store = { type: 'vault', address: 'https://vault.test', port: 8200, tls: true, roleToken: 't', appSecret: 's', PASSWORD: 'p' };
    expect(await statusWith(profile)).toEqual({
      profile: 'default',
      store: 'vault (address https://vault.test, port 8200)',
      secret: 'claude-code/keys/alice',
      cacheBackend: { configured: 'file', inUse: 'file' },
      cached: false,
    });
  });

  it('names a store with no plain fields by its type alone, and an SSO profile by its issuer', async () => {
    const bare = testProfile();
    bare.store = { type: 'gcp' };
    expect((await statusWith(bare)).store).toBe('gcp');
    const sso = testProfile();
    delete sso.store;
    sso.oidc = { issuer: 'https://login.test', clientId: 'kb' };
    sso.secret = 'https://login.test';
    expect((await statusWith(sso)).store).toBe('oidc (issuer https://login.test)');
  });

  it('tells the secret name without the store: fixed, from the OS login, or as last cached for "user": "store"', async () => {
    const fixed = { ...testProfile(), secret: 'team/shared-key' };
    expect((await statusWith(fixed, undefined, () => 'not a user name')).secret).toBe('team/shared-key');
    // An OS login that cannot be a secret name fails status as it fails get: a configuration error.
    const badUser = cacheStatus(configOf(testProfile()), {
      cache: memoryCache(),
      now: () => NOW,
      osUser: () => '../etc',
      callerTtlMs: TTL,
    });
    await expect(badUser).rejects.toThrow(ConfigError);
    await expect(badUser).rejects.toThrow(/the user name "..\/etc" from the OS login cannot be used/);
    const store = { ...testProfile(), user: 'store' as const };
    expect((await statusWith(store)).secret).toBe('claude-code/keys/{user} ({user} from the store identity, known after the first get)');
    expect((await statusWith(store, { secret: 'claude-code/keys/bob' })).secret).toBe('claude-code/keys/bob');
    expect((await statusWith({ ...store, secret: 'team/shared-key' })).secret).toBe('team/shared-key');
  });

  it('a cached key: its fingerprint, version, age, freshness, and the next refresh one refresh interval after it was read', async () => {
    const status = await statusWith(testProfile(), { fetchedAt: NOW - 10 * MINUTE });
    expect(status.cached).toEqual({
      fingerprint: fingerprint('sk-test-status'),
      version: 'v3',
      secret: 'claude-code/keys/alice',
      fetchedAt: '2026-11-27T08:50:00.000Z',
      ageMs: 10 * MINUTE,
      freshness: 'fresh',
      nextRefreshAt: '2026-11-27T09:20:00.000Z',
    });
  });

  it('a key near its expiry is refreshed twice the caller TTL plus the clock slack before it, whichever comes first', async () => {
    const soon = await statusWith(testProfile(), { expiresAt: NOW + 20 * MINUTE });
    // 09:20 expiry − (2 × 5 min + 1 min) = 09:09, before the 09:20 refresh.
    expect(soon.cached).toMatchObject({
      expiresAt: '2026-11-27T09:20:00.000Z',
      nextRefreshAt: '2026-11-27T09:09:00.000Z',
      freshness: 'fresh',
    });
    const late = await statusWith(testProfile(), { expiresAt: NOW + 60 * MINUTE });
    expect(late.cached).toMatchObject({ expiresAt: '2026-11-27T10:00:00.000Z', nextRefreshAt: '2026-11-27T09:20:00.000Z' });
  });

  it('judges freshness with the profile rule: stale past the refresh interval, expired at the expiry', async () => {
    expect((await statusWith(testProfile(), { fetchedAt: NOW - 30 * MINUTE })).cached).toMatchObject({ freshness: 'stale' });
    expect((await statusWith(testProfile(), { expiresAt: NOW })).cached).toMatchObject({ freshness: 'expired' });
  });
});

describe('formatStatus', () => {
  const base: CacheStatus = {
    profile: 'default',
    store: 'aws (region us-east-1)',
    secret: 'claude-code/keys/alice',
    cacheBackend: { configured: 'file', inUse: 'file' },
    cached: false,
  };

  it('with nothing cached: aligned rows and what the next get does', () => {
    expect(formatStatus(base, NOW)).toBe(
      [
        'profile     default',
        'store       aws (region us-east-1)',
        'secret      claude-code/keys/alice',
        'cache       file',
        "cached key  none (the next 'keybroker get' fetches and caches one)",
        '',
      ].join('\n'),
    );
  });

  it('a cached key: fingerprint and freshness, age, expiry and next refresh with how far off they are', () => {
    const status: CacheStatus = {
      ...base,
      cacheBackend: { configured: 'auto', inUse: 'keychain' },
      cached: {
        fingerprint: 'sha256:0123abcd',
        version: 'v3',
        secret: 'claude-code/keys/alice',
        fetchedAt: '2026-11-27T08:50:00.000Z',
        ageMs: 10 * MINUTE,
        expiresAt: '2026-11-27T11:30:00.000Z',
        freshness: 'fresh',
        nextRefreshAt: '2026-11-27T09:20:00.000Z',
      },
    };
    expect(formatStatus(status, NOW)).toBe(
      [
        'profile       default',
        'store         aws (region us-east-1)',
        'secret        claude-code/keys/alice',
        'cache         keychain (configured: auto)',
        'cached key    sha256:0123abcd (fresh)',
        'version       v3',
        'age           10m (read 2026-11-27T08:50:00.000Z)',
        'expires       2026-11-27T11:30:00.000Z (in 2h30m)',
        'next refresh  2026-11-27T09:20:00.000Z (in 20m)',
        '',
      ].join('\n'),
    );
  });

  it('a refresh due now or past says "at the next get"; a key without expiry says so', () => {
    const cached = {
      fingerprint: 'sha256:0123abcd',
      version: 'v3',
      secret: 'claude-code/keys/alice',
      fetchedAt: '2026-11-27T08:30:00.000Z',
      ageMs: 30 * MINUTE,
      freshness: 'stale' as const,
      nextRefreshAt: '2026-11-27T09:00:00.000Z',
    };
    const text = formatStatus({ ...base, cached }, NOW);
    expect(text).toContain('\nexpires       no expiry set\n');
    expect(text).toContain('\nnext refresh  at the next get (due)\n');
    const justBefore = formatStatus({ ...base, cached }, NOW - 1_000);
    expect(justBefore).toContain('\nnext refresh  2026-11-27T09:00:00.000Z (in 1s)\n');
  });
});
