// Offboarding ends every key keybroker minted, and admin actions settle their outcome when an
// answer is lost: against moto (through a proxy that can apply a write after the client gave up)
// and a LiteLLM-faithful gateway.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import { StoreUnreachable } from '../../src/kernel/errors.ts';
import type { KeyIssuer } from '../../src/gateway/key-issuer.ts';
import { openKeyIssuer } from '../../src/gateway/issuers.ts';
import { currentKey } from '../../src/admin/common.ts';
import { rotateKeys } from '../../src/admin/rotate.ts';
import { revokeKey, revokeKeys } from '../../src/admin/revoke.ts';
import type { Provider } from '../../providers/provider.ts';
import type { AuditRecord } from '../../src/admin/audit.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { startFakeLiteLlm, type FakeLiteLlm } from '../fakes/litellm.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';
import { adminDeps, adminProfile, providerAs, startAwsStore } from './support.ts';

const CALLER_TTL_MS = 200;
const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tokenOf = (key: string) => createHash('sha256').update(key).digest('hex');

describe('offboarding and lost answers', () => {
  let store: HarnessInstance;
  let litellm: FakeLiteLlm;
  let proxy: StoreProxy;
  let profile: Profile;
  let admin: Provider;
  let issuer: KeyIssuer;
  /** An issuer that gives up on the gateway after this long (the mint-timeout cases). */
  const ISSUER_TIMEOUT_MS = 1_000;
  /** The store calls' bound, retries included (the lost-write case holds a write past it). */
  const STORE_TIMEOUT_MS = 2_000;

  beforeAll(async () => {
    store = await startAwsStore();
    litellm = await startFakeLiteLlm();
    proxy = await startStoreProxy(store.port);
    profile = adminProfile(store.storeConfig(Number(new URL(proxy.url).port)), {
      timeoutMs: STORE_TIMEOUT_MS,
      keyIssuer: { type: 'litellm', url: litellm.url, masterKeyEnv: 'TEST_LITELLM_MASTER_KEY' },
    });
    admin = await providerAs(profile, store.adminEnv);
    issuer = openKeyIssuer(profile.keyIssuer, { env: { TEST_LITELLM_MASTER_KEY: litellm.masterKey }, timeoutMs: ISSUER_TIMEOUT_MS });
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop();
    await litellm?.stop();
    await store?.stop();
  });

  async function message(key: string): Promise<number> {
    const response = await fetch(`${litellm.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'ping' }] }),
    });
    await response.text();
    return response.status;
  }
  /** Keys of `user` the gateway would accept now. */
  const liveKeys = (user: string) =>
    litellm.keys.filter((entry) => entry.userId === user && litellm.accepts(entry.key)).map((entry) => entry.key);

  it('revoke after rotate --grace 24h ends the old key in its grace too: both keys 401, the audit counts 2', async () => {
    const { deps, audit } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: ['gina'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const first = (await currentKey(deps, 'claude-code/keys/gina'))!.key;
    await rotateKeys(deps, { users: ['gina'], graceMs: 24 * HOUR, dryRun: false }, CALLER_TTL_MS);
    const second = (await currentKey(deps, 'claude-code/keys/gina'))!.key;
    expect([await message(first), await message(second)]).toEqual([200, 200]);

    await revokeKey(deps, { user: 'gina', purge: false });
    expect([await message(first), await message(second)]).toEqual([401, 401]);
    expect(liveKeys('gina')).toEqual([]);
    expect(audit.at(-2)!.outcome).toBe('2 keys deleted at the gateway (the stored key; 1 other key keybroker minted for this user)');
  });

  it('rotate --all with a grace, then a revoke of each: no key of theirs is live', async () => {
    const { deps } = adminDeps(admin, profile, { issuer });
    const users = ['hal', 'ida', 'jon'];
    await rotateKeys(deps, { users, graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    await rotateKeys(deps, { users, graceMs: 24 * HOUR, dryRun: false }, CALLER_TTL_MS);
    for (const user of users) expect(liveKeys(user)).toHaveLength(2);
    await revokeKeys(deps, { users, purge: false });
    for (const user of users) expect(liveKeys(user), user).toEqual([]);
  });

  it('revoke of a developer with no secret in the store still deletes their keybroker keys at the gateway, every page of them', async () => {
    // 130 keys: more than one page of the gateway's listing.
    for (let index = 0; index < 130; index++) await issuer.mint('kim');
    const { deps, audit, output } = adminDeps(admin, profile, { issuer });
    await revokeKey(deps, { user: 'kim', purge: false });
    expect(liveKeys('kim')).toEqual([]);
    expect(audit.at(-2)!.outcome).toBe('130 keys deleted at the gateway (no stored key; 130 keys keybroker minted for this user)');
    expect(audit.at(-1)!.outcome).toBe('no secret in the store (nothing to disable)');
    expect(output.out.at(-1)).toMatch(
      /^kim: secret "claude-code\/keys\/kim" no secret in the store \(nothing to disable\); 130 keys deleted at LiteLLM/,
    );
  });

  it.each([
    ['answered after the issuer timeout', { delayMs: 2_500 }],
    ['answered 502 after the gateway made the key', { status: 502 }],
    ['reset after the gateway made the key', 'reset'],
  ] as const)(
    'a mint %s: audited before it was sent (alias included), found by its alias and deleted; the old key untouched',
    async (_name, fault) => {
      const { deps, audit } = adminDeps(admin, profile, { issuer });
      await rotateKeys(deps, { users: ['carol'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
      const before = (await currentKey(deps, 'claude-code/keys/carol'))!;
      const lines = audit.length;
      litellm.failAfterCommit('/key/generate', fault);
      const error = await rotateKeys(deps, { users: ['carol'], graceMs: 0, dryRun: false }, CALLER_TTL_MS).catch(
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(StoreUnreachable);
      const [intent, outcome] = audit.slice(lines);
      expect(intent).toMatchObject({ action: 'rotate', user: 'carol', outcome: 'intent: mint a new key', oldToken: tokenOf(before.key) });
      expect(intent!.alias).toMatch(/^keybroker-carol-/);
      expect(outcome).toMatchObject({ step: intent!.step, alias: intent!.alias, settled: true });
      expect(outcome!.outcome).toMatch(/^failed: mint: .*; the gateway had made the key: deleted by its alias$/);
      // The one key live is the stored one.
      expect(liveKeys('carol')).toEqual([before.key]);
      expect((await currentKey(deps, 'claude-code/keys/carol'))!.version).toBe(before.version);
      await sleep(typeof fault === 'object' && 'delayMs' in fault ? fault.delayMs : 0);
    },
  );

  it('revoke of carol when a mint went unstored and the store has no secret: the gateway is asked, the key ends, exit 0', async () => {
    const { deps } = adminDeps(admin, profile, { issuer });
    const orphan = (await issuer.mint('carla')).key;
    expect(await message(orphan)).toBe(200);
    await revokeKey(deps, { user: 'carla', purge: false });
    expect(await message(orphan)).toBe(401);
  });

  it("a store write applied after the client gave up: the rotation settles on what the store holds; the developer's key works and no key is live that the store does not hold", async () => {
    const { deps, audit, output } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: ['lena'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const before = (await currentKey(deps, 'claude-code/keys/lena'))!;
    const puts = proxy.count('PutSecretValue');
    // The first PutSecretValue reaches moto only after the client's bound has passed.
    proxy.holdNext('PutSecretValue', STORE_TIMEOUT_MS + 1_000);
    await rotateKeys(deps, { users: ['lena'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    expect(proxy.count('PutSecretValue') - puts).toBe(2);
    // Let the held write land.
    await sleep(2_000);
    const after = (await currentKey(deps, 'claude-code/keys/lena'))!;
    expect(after.key).not.toBe(before.key);
    expect(await message(after.key)).toBe(200);
    expect(await message(before.key)).toBe(401);
    expect(liveKeys('lena')).toEqual([after.key]);
    expect(output.err).toEqual([]);
    expect(audit.map((entry) => entry.outcome).slice(-3)).toEqual(['intent: store write', 'updated', 'old key deleted at the gateway']);
  }, 30_000);

  it('a store write never confirmed and not shown by the store: the minted key is kept (unsettled), the old one untouched; --resume then deletes the key the store does not hold', async () => {
    const lines: AuditRecord[] = [];
    const log = { record: (entry: AuditRecord) => void lines.push(entry), history: () => lines };
    const { deps } = adminDeps(admin, profile, { issuer, audit: log });
    await rotateKeys(deps, { users: ['moe'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const before = (await currentKey(deps, 'claude-code/keys/moe'))!;
    const silent: Provider = {
      ...admin,
      write: async () =>
        Promise.reject(new StoreUnreachable('AWS Secrets Manager did not answer PutSecretValue within 2000 ms', 'check your network')),
    };
    const failing = adminDeps(silent, profile, { issuer, audit: log });
    const error = await rotateKeys(failing.deps, { users: ['moe'], graceMs: 0, dryRun: false }, CALLER_TTL_MS).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect(lines.at(-1)!.outcome).toMatch(/^unsettled: the store may still apply the write/);
    expect(failing.output.err.join('\n')).toMatch(/rotate --resume' with the same --audit-log/);
    // Nobody is locked out: the stored key works, and the minted one was not deleted on a guess.
    expect(liveKeys('moe')).toHaveLength(2);
    expect(liveKeys('moe')).toContain(before.key);

    await rotateKeys(deps, { users: [], resume: true, graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    expect(liveKeys('moe')).toEqual([before.key]);
    expect(lines.at(-1)).toMatchObject({
      settled: true,
      outcome: 'resumed: the store does not hold the minted key: deleted at the gateway; the old key is still the stored one, unchanged',
    });
  });

  it('revoke when the store cannot be read: the gateway still ends every keybroker key of theirs, and the read failure is audited', async () => {
    const { deps } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: ['ned'], graceMs: 24 * HOUR, dryRun: false }, CALLER_TTL_MS);
    await rotateKeys(deps, { users: ['ned'], graceMs: 24 * HOUR, dryRun: false }, CALLER_TTL_MS);
    expect(liveKeys('ned')).toHaveLength(2);
    const unreadable: Provider = {
      ...admin,
      readCurrent: async () =>
        Promise.reject(new StoreUnreachable('AWS Secrets Manager did not answer GetSecretValue within 2000 ms', 'check your network')),
    };
    const offboard = adminDeps(unreadable, profile, { issuer });
    await revokeKey(offboard.deps, { user: 'ned', purge: false });
    expect(liveKeys('ned')).toEqual([]);
    expect(offboard.audit.map((entry) => entry.outcome)).toEqual([
      'failed: store read: AWS Secrets Manager did not answer GetSecretValue within 2000 ms: check your network',
      'intent: delete every keybroker key of this user at the gateway, then disable the secret',
      '2 keys deleted at the gateway (the store could not be read; 2 keys keybroker minted for this user)',
      'disabled (recoverable)',
    ]);
  });
});
