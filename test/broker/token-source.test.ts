// The broker core with an SSO token source (BrokerDeps.fetchEntry) instead of a store: the same
// cache → lock → source → cache, the freshness rule against the token's exp with the token slack,
// a 401 re-run that forces a refresh, and never a refresh beside another process's refresh.
import { describe, expect, it } from 'vitest';
import { getKey, lockWaitMs, TOKEN_CLOCK_SLACK_MS } from '../../src/broker/broker.ts';
import { formatDuration } from '../../src/kernel/duration.ts';
import { StoreUnreachable } from '../../src/kernel/errors.ts';
import type { CacheEntry } from '../../src/cache/entry.ts';
import type { Lock } from '../../src/broker/lock.ts';
import type { Profile } from '../../src/config/config.ts';
import { testProfile, world } from './fakes.ts';

const TTL = 10_000;
const TOKEN_LIFETIME = 60_000;

/** A token endpoint: each refresh is a new token living TOKEN_LIFETIME from `now`. */
function tokenEndpoint(now: () => number) {
  const endpoint = {
    refreshes: 0,
    fetch: async (): Promise<CacheEntry> => {
      endpoint.refreshes++;
      return {
        key: `eyJ.test-token-${endpoint.refreshes}.sig`,
        version: `jti-${endpoint.refreshes}`,
        secret: 'https://idp.test',
        fetchedAt: now(),
        expiresAt: now() + TOKEN_LIFETIME,
      };
    },
  };
  return endpoint;
}

/** An `oidc` profile: its tokens' entries name the issuer, as src/sso/ writes them. */
const ssoProfile = (): Profile => ({
  ...testProfile(),
  secret: 'https://idp.test',
  oidc: { issuer: 'https://idp.test', clientId: 'keybroker-test' },
});

describe('getKey with an SSO token source', () => {
  it('serves the cached token while it has more than 2 × TTL + slack left, then refreshes ahead of exp', async () => {
    const w = world(ssoProfile(), TTL);
    const idp = tokenEndpoint(() => w.clock.now);
    const deps = (caller: string) =>
      w.deps(caller, {
        fetchEntry: idp.fetch,
        clockSlackMs: TOKEN_CLOCK_SLACK_MS,
        openProvider: () => Promise.reject(new Error('no store')),
      });
    expect((await getKey(deps('a'))).from).toBe('store');
    const margin = 2 * TTL + TOKEN_CLOCK_SLACK_MS;
    w.clock.now += TOKEN_LIFETIME - margin - 1;
    expect((await getKey(deps('b'))).from).toBe('cache');
    w.clock.now += 1;
    const served = await getKey(deps('c'));
    expect(served).toMatchObject({ from: 'store', version: 'jti-2' });
    expect(served.expiresAt! - w.clock.now).toBe(TOKEN_LIFETIME);
    expect(idp.refreshes).toBe(2);
  });

  it('a 401 re-run from the same Claude Code process forces a refresh', async () => {
    const w = world(ssoProfile(), TTL);
    const idp = tokenEndpoint(() => w.clock.now);
    const deps = (caller: string) => w.deps(caller, { fetchEntry: idp.fetch, clockSlackMs: TOKEN_CLOCK_SLACK_MS });
    await getKey(deps('claude-1'));
    w.clock.now += 2_000;
    expect(await getKey(deps('claude-1'))).toMatchObject({ from: 'store', version: 'jti-2' });
    expect(w.gateway.calls).toBe(0);
  });

  it('20 callers of a stale token: one refresh, even for tokens shorter than the margin', async () => {
    const w = world(ssoProfile(), 5 * 60_000); // default TTL: margin 610 s > a 60 s token
    const idp = tokenEndpoint(() => w.clock.now);
    const deps = (caller: string) => w.deps(caller, { fetchEntry: idp.fetch, clockSlackMs: TOKEN_CLOCK_SLACK_MS });
    const served = await Promise.all(Array.from({ length: 20 }, (_, index) => getKey(deps(`claude-${index}`))));
    expect(idp.refreshes).toBe(1);
    expect(new Set(served.map((entry) => entry.key)).size).toBe(1);
  });

  it('never refreshes beside another process that holds the lock: serves the unexpired token with a warning, else fails', async () => {
    const w = world(ssoProfile(), TTL);
    const idp = tokenEndpoint(() => w.clock.now);
    const neverFree: Lock = { acquire: async () => undefined };
    const ticking = () => (w.clock.now += 1_000);
    const deps = w.deps('a', { fetchEntry: idp.fetch, clockSlackMs: TOKEN_CLOCK_SLACK_MS });
    await getKey(deps);
    w.clock.now += TOKEN_LIFETIME - 2 * TTL - TOKEN_CLOCK_SLACK_MS;
    // Each look at the clock moves it on a second; each look at the wait's own clock, two.
    let waited = 0;
    const blocked = w.deps('b', {
      fetchEntry: idp.fetch,
      clockSlackMs: TOKEN_CLOCK_SLACK_MS,
      lock: neverFree,
      now: ticking,
      monotonicNow: () => (waited += 2_000),
    });
    expect(await getKey(blocked)).toMatchObject({ from: 'stale-cache', version: 'jti-1' });
    const after = formatDuration(lockWaitMs(ssoProfile(), 0));
    expect(w.warnings.at(-1)).toMatch(
      new RegExp(
        `^keybroker: another keybroker is still refreshing the token of profile "default" after ${after}; serving the cached token read \\S+ ago$`,
      ),
    );
    w.cache.data.clear();
    const error = (await getKey(blocked).catch((e: unknown) => e)) as StoreUnreachable;
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect(error.line()).toBe(
      `another keybroker is still refreshing the token of profile "default" after ${after}: try again; if it persists, run keybroker doctor`,
    );
    expect(idp.refreshes).toBe(1);
  });
});
