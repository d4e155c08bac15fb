// Bulk admin actions against services: rotate --all against moto while the gateway's key API answers
// 429 + Retry-After above a rate, and admin import on AWS with each store call paced (the limiter alone: bulk.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThrottleRelay } from '../../src/admin/bulk.ts';
import { importKeys } from '../../src/admin/import.ts';
import { revokeKeys } from '../../src/admin/revoke.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { AWS_TEST_CREDENTIALS, startMoto, type Moto } from '../support/moto.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';
import { withEnvironment } from '../support/environment.ts';
import { currentKey } from '../../src/admin/common.ts';
import { putKey } from '../../src/admin/put.ts';
import { allUsers, rotateKeys } from '../../src/admin/rotate.ts';
import { openKeyIssuer } from '../../src/gateway/issuers.ts';
import type { Profile } from '../../src/config/config.ts';
import type { KeyIssuer } from '../../src/gateway/key-issuer.ts';
import type { Provider } from '../../providers/provider.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { startFakeLiteLlm, type FakeLiteLlm } from '../fakes/litellm.ts';
import { adminDeps, adminProfile, providerAs, startAwsStore } from './support.ts';

const _sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('admin rotate --all while the gateway throttles (429 + Retry-After)', () => {
  let store: HarnessInstance;
  let litellm: FakeLiteLlm;
  let profile: Profile;
  let admin: Provider;
  let issuer: KeyIssuer;

  beforeAll(async () => {
    store = await startAwsStore();
    litellm = await startFakeLiteLlm();
    profile = adminProfile(store.storeConfig(store.port), {
      secret: 'fleet/keys/{user}',
      keyIssuer: { type: 'litellm', url: litellm.url, masterKeyEnv: 'TEST_LITELLM_MASTER_KEY' },
    });
    admin = await providerAs(profile, store.adminEnv);
    issuer = openKeyIssuer(profile.keyIssuer, { env: { TEST_LITELLM_MASTER_KEY: litellm.masterKey }, timeoutMs: 10_000 });
  }, 240_000);
  afterAll(async () => {
    await litellm?.stop();
    await store?.stop();
  });

  it('rotates every developer, retires each old key with the grace, leaves no orphan key, and slowed down', async () => {
    const users = Array.from({ length: 40 }, (_, index) => `dev${String(index).padStart(2, '0')}`);
    const { deps, audit, output } = adminDeps(admin, profile, { issuer, bulk: { ceiling: 16 } });
    for (const user of users) await putKey(deps, { user, key: (await issuer.mint(user)).key });
    const oldKeys = new Map<string, string>();
    for (const user of users) oldKeys.set(user, (await currentKey(deps, `fleet/keys/${user}`))!.key);
    expect(await allUsers(deps)).toEqual(users);

    litellm.limitRate(8, 1);
    const graceMs = 600_000;
    const started = Date.now();
    const rotated = await rotateKeys(deps, { users, graceMs, dryRun: false }, 1_000);
    const ended = Date.now();
    litellm.limitRate(undefined);

    expect(litellm.throttled()).toBeGreaterThan(0);
    expect(rotated.map((result) => result.user)).toEqual(users);
    expect(output.out.at(-1)).toMatch(/^rotated 40 keys in .* \(throttled \d+ times, slowed down\)\n$/);
    const stored = new Set<string>();
    for (const user of users) {
      const now = (await currentKey(deps, `fleet/keys/${user}`))!.key;
      expect(now).not.toBe(oldKeys.get(user));
      expect(litellm.accepts(now)).toBe(true);
      stored.add(now);
      // The old key still works, and ends with the grace that started after the new one was stored.
      const old = litellm.keys.find((entry) => entry.key === oldKeys.get(user))!;
      expect(litellm.accepts(old.key)).toBe(true);
      expect(old.expires).toBeGreaterThanOrEqual(started + graceMs);
      expect(old.expires).toBeLessThanOrEqual(ended + graceMs);
    }
    // No orphan: every key the gateway honours without an end is one the store holds.
    const open = litellm.keys.filter((entry) => litellm.accepts(entry.key) && entry.expires === null).map((entry) => entry.key);
    expect(new Set(open)).toEqual(stored);
    // Besides the intents: one audit line per developer for the write and one for the old key's retirement.
    expect(
      audit
        .filter((entry) => entry.action === 'rotate' && !entry.outcome.startsWith('intent:'))
        .map((entry) => `${entry.user}:${entry.outcome}`)
        .sort(),
    ).toEqual(users.map((user) => `${user}:updated`));
    expect(audit.filter((entry) => entry.action === 'revoke' && entry.outcome === 'old key expires at the gateway in 10m')).toHaveLength(
      40,
    );
  }, 240_000);
});

describe('admin import on AWS: store calls per row, each paced by the limiter', () => {
  let moto: Moto;
  let proxy: StoreProxy;
  let profile: Profile;
  let relay: ThrottleRelay;
  let provider: Provider;
  let paced = 0;
  const env = { ...AWS_TEST_CREDENTIALS, PATH: process.env['PATH'] };
  const users = Array.from({ length: 12 }, (_, index) => `row${String(index).padStart(2, '0')}`);
  const csv = (tag: string) => `${['user,key', ...users.map((user) => `${user},sk-test-${tag}-${user}-0123456789`)].join('\n')}\n`;
  const counted = () =>
    Object.fromEntries(
      ['GetSecretValue', 'DescribeSecret', 'CreateSecret', 'PutSecretValue', 'TagResource', 'RestoreSecret'].map((operation) => [
        operation,
        proxy.count(operation),
      ]),
    );
  const delta = (before: Record<string, number>) =>
    Object.fromEntries(Object.entries(counted()).map(([operation, count]) => [operation, count - before[operation]!]));

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startStoreProxy(moto.port);
    profile = adminProfile({ type: 'aws', region: 'us-east-1', endpoint: proxy.url }, { secret: 'rows/{user}' });
    relay = new ThrottleRelay();
    // Each SDK client resolves credentials on its first call: both made inside `env`.
    provider = await withEnvironment(env, async () => {
      // Counts what goes out through the limiter: each call to the store, each retry included.
      const paceCall: typeof relay.pace = (send) => relay.pace(() => (paced++, send()));
      const opened = await openProvider(profile, { env, debug: () => {}, onThrottle: (waitMs) => relay.notify(waitMs), paceCall });
      await opened.whoami();
      await opened.readCurrent('keybroker-warm-up').catch(() => undefined);
      return opened;
    });
  }, 240_000);
  afterAll(async () => {
    await proxy?.stop();
    await moto?.stop();
  });

  it('creates a new developer in two calls and adds a version in three: no DescribeSecret after the read', async () => {
    const first = adminDeps(provider, profile, { bulk: { ceiling: 4, relay } });
    let before = counted();
    await importKeys(first.deps, csv('first'), 'csv', 'keys.csv');
    expect(delta(before)).toEqual({
      GetSecretValue: 12,
      DescribeSecret: 0,
      CreateSecret: 12,
      PutSecretValue: 0,
      TagResource: 0,
      RestoreSecret: 0,
    });
    before = counted();
    await importKeys(adminDeps(provider, profile, { bulk: { ceiling: 4, relay } }).deps, csv('second'), 'csv', 'keys.csv');
    expect(delta(before)).toEqual({
      GetSecretValue: 12,
      DescribeSecret: 0,
      CreateSecret: 0,
      PutSecretValue: 12,
      TagResource: 12,
      RestoreSecret: 0,
    });
  }, 120_000);

  it('re-provisions a revoked developer (the read says not found, the create finds it scheduled for deletion)', async () => {
    const { deps } = adminDeps(provider, profile, { bulk: { ceiling: 4, relay } });
    await revokeKeys(deps, { users: ['row03'], purge: false });
    const before = counted();
    await importKeys(deps, csv('third'), 'csv', 'keys.csv');
    expect(delta(before)).toMatchObject({ CreateSecret: 1, DescribeSecret: 1, RestoreSecret: 1, PutSecretValue: 12 });
    expect((await currentKey(deps, 'rows/row03'))?.key).toBe('sk-test-third-row03-0123456789');
  }, 120_000);

  it('rotate --all lists the developers through the same limiter as the rotations: its ListSecrets pages count against the one quota', async () => {
    const litellm = await startFakeLiteLlm();
    try {
      const { deps, output } = adminDeps(provider, profile, { bulk: { ceiling: 4, relay } });
      deps.issuer = openKeyIssuer(
        { type: 'litellm', url: litellm.url, masterKeyEnv: 'TEST_LITELLM_MASTER_KEY' },
        { env: { TEST_LITELLM_MASTER_KEY: litellm.masterKey }, timeoutMs: 10_000 },
      );
      const listed = proxy.count('ListSecrets');
      const before = counted();
      await rotateKeys(deps, { users: [], all: true, graceMs: 0, dryRun: true }, 60_000);
      expect(output.out.join('')).toContain('row11: 1. mint a new key');
      const pages = proxy.count('ListSecrets') - listed;
      expect(pages).toBeGreaterThan(0);
      // Every store call of the action, the listing's included, went through this action's store gate.
      const reads = delta(before)['GetSecretValue']!;
      expect(reads).toBe(12);
      expect(relay.target!.state.store.calls).toBe(pages + reads);
    } finally {
      await litellm.stop();
    }
  }, 120_000);

  it('sends each throttled store call again through the limiter, and writes one version per row', async () => {
    const { deps } = adminDeps(provider, profile, { bulk: { ceiling: 4, relay } });
    const versions = async () => {
      const counts: number[] = [];
      for (const user of users)
        counts.push(
          (
            JSON.parse(await moto.aws(['secretsmanager', 'list-secret-version-ids', '--secret-id', `rows/${user}`])) as {
              Versions: unknown[];
            }
          ).Versions.length,
        );
      return counts;
    };
    const versionsBefore = await versions();
    proxy.throttle('PutSecretValue', 3);
    proxy.throttle('TagResource', 2);
    const before = counted();
    const pacedBefore = paced;
    const summary = await importKeys(deps, csv('fourth'), 'csv', 'keys.csv');
    expect(summary.written).toHaveLength(12);
    expect(proxy.throttled('PutSecretValue')).toBe(3);
    expect(proxy.throttled('TagResource')).toBe(2);
    // Every call the store saw, the 5 refused and their re-sends included, went out through the limiter, which saw each refusal.
    expect(paced - pacedBefore).toBe(Object.values(delta(before)).reduce((sum, count) => sum + count, 0));
    expect(paced - pacedBefore).toBe(12 * 3 + 5);
    expect(relay.target!.state.store.throttles).toBe(5);
    const versionsAfter = await versions();
    expect(versionsAfter.map((count, index) => count - versionsBefore[index]!)).toEqual(users.map(() => 1));
    // A safety net, not a speed bound: 24 runs of the (Python) aws CLI and the limiter's back-offs took 113-120 s at a load of 17.
  }, 300_000);
});
