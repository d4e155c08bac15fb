// Details of `get` a user meets in its messages, its --debug output and its remembered state: the
// broker core with fakes (test/broker/fakes.ts). No I/O.
import { describe, expect, it } from 'vitest';
import { fetchFromStore, getKey, lockWaitMs, readAgo, verifyRefusal } from '../../src/broker/broker.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { memoryRotationState } from '../../src/broker/rotation-state.ts';
import type { Lock } from '../../src/broker/lock.ts';
import type { Profile } from '../../src/config/config.ts';
import { ConfigError, type KeyRejected, StoreUnreachable } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { MINUTE, testProfile, world } from './fakes.ts';

const account = cacheAccount(testProfile(), () => 'alice');

describe('remembered state', () => {
  it('a plain get records no re-check', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    expect(w.state.lastRecheck(account)).toBeUndefined();
  });

  it('without a way to refresh in the background, no refresh-ahead is recorded as started', async () => {
    const w = world();
    await getKey(w.deps('claude-1'));
    w.clock.now += 25 * MINUTE;
    expect((await getKey(w.deps('claude-2', { startBackgroundRefresh: undefined }))).from).toBe('cache');
    expect(w.state.lastRefreshAhead(account)).toBeUndefined();
  });
});

describe('a refusal verified, in the debug output', () => {
  const entry = (key: string) => ({ key, version: 'v2', secret: 's', fetchedAt: 0 });
  function deps(checkWithGateway?: () => Promise<'accepted'>) {
    const lines: string[] = [];
    return {
      lines,
      deps: {
        now: () => 0,
        state: memoryRotationState(),
        checkWithGateway,
        gatewayName: 'http://gateway.test',
        debug: (line: string) => void lines.push(line),
      },
    };
  }

  it('says the store holds a newer key, with its fingerprint and version', async () => {
    const { lines, deps: d } = deps();
    await verifyRefusal(d, 'account', fingerprint('sk-test-one'), entry('sk-test-two'));
    expect(lines).toEqual([`the store holds a newer key (${fingerprint('sk-test-two')}, version v2)`]);
  });

  it("says the store still holds the key, and the gateway's answer (unknown without a gateway to ask)", async () => {
    const asked = deps(async () => 'accepted');
    await verifyRefusal(asked.deps, 'account', fingerprint('sk-test-one'), entry('sk-test-one'));
    expect(asked.lines).toEqual([`the store still holds key ${fingerprint('sk-test-one')}; the gateway says: accepted`]);
    const none = deps();
    await verifyRefusal(none.deps, 'account', fingerprint('sk-test-one'), entry('sk-test-one'));
    expect(none.lines).toEqual([`the store still holds key ${fingerprint('sk-test-one')}; the gateway says: unknown`]);
  });

  it('a fresh rejection tells the user that Claude Code picks up the rotated key by itself', async () => {
    const d = { ...deps().deps, checkWithGateway: async () => 'rejected' as const };
    const error = (await verifyRefusal(d, 'account', fingerprint('sk-test-one'), entry('sk-test-one')).catch(
      (e: unknown) => e,
    )) as KeyRejected;
    expect(error.line()).toMatch(
      /: ask your admin to rotate your key \(keybroker admin rotate\); Claude Code picks up the new one by itself$/,
    );
  });
});

describe('how long ago', () => {
  it('a key read this very millisecond was read 0ms ago; one read ahead of the clock says so', () => {
    expect(readAgo(0)).toBe('read 0ms ago');
    expect(readAgo(-1)).toBe('read at a time still ahead of this clock (the clock was set back)');
  });

  it('a waiter beside a slow SSO refresh says how long ago the token it serves was read', async () => {
    const sso: Profile = { ...testProfile(), secret: 'https://idp.test', oidc: { issuer: 'https://idp.test', clientId: 'keybroker-test' } };
    const w = world(sso, 10_000);
    const fetchEntry = async () => ({
      key: 'eyJ.test-token.sig',
      version: 'jti',
      secret: 'https://idp.test',
      fetchedAt: w.clock.now,
      expiresAt: w.clock.now + 60_000,
    });
    await getKey(w.deps('a', { fetchEntry }));
    w.clock.now += 35_000;
    const monotonic = { now: 0 };
    const never: Lock = {
      acquire: async (_name, waitMs) => {
        monotonic.now += waitMs;
        return undefined;
      },
    };
    expect(await getKey(w.deps('b', { fetchEntry, lock: never, monotonicNow: () => monotonic.now }))).toMatchObject({
      from: 'stale-cache',
    });
    expect(w.warnings.at(-1)).toMatch(/; serving the cached token read 35s ago$/);
  });
});

describe('the wait for a live holder', () => {
  it('a lock held for an hour already gets no extra wait: the waiter reads the store after one wait', async () => {
    const w = world();
    const monotonic = { now: 0 };
    let readAt: number | undefined;
    w.store.during = async () => void (readAt = monotonic.now);
    const held: Lock = {
      acquire: async (_name, waitMs) => {
        monotonic.now += waitMs;
        return undefined;
      },
      heldSince: async () => w.clock.now - 60 * MINUTE,
    };
    await getKey(w.deps('claude-1', { lock: held, monotonicNow: () => monotonic.now }));
    const waitMs = lockWaitMs(testProfile(), 0);
    expect(readAt).toBeGreaterThanOrEqual(waitMs);
    expect(readAt).toBeLessThan(waitMs + 500);
  });
});

describe('the user a secret is read for', () => {
  it('a profile with user "os" reads the secret of the OS login, without asking the store who it is', async () => {
    const w = world();
    const provider = w.store.provider();
    provider.whoami = async () => {
      throw new StoreUnreachable('whoami should not be called', 'none');
    };
    const entry = await fetchFromStore(w.deps(undefined, { osUser: () => 'bob', openProvider: async () => provider }));
    expect(entry.secret).toBe('claude-code/keys/bob');
  });

  it('an OS login that cannot be part of the secret name names the OS login as its source', async () => {
    const w = world();
    const error = await fetchFromStore(w.deps(undefined, { osUser: () => 'a/b' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('the user name "a/b" from the OS login cannot be used');
  });
});
