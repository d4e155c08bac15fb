// Rotation through a LiteLLM-faithful gateway while a developer keeps running `get` and sending
// requests with what it returns: mint → write → retire, and nobody is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getKey, type BrokerDeps } from '../../src/broker/broker.ts';
import { memoryRotationState } from '../../src/broker/rotation-state.ts';
import type { Profile } from '../../src/config/config.ts';
import { AccessDenied, NotAuthenticated, UnusableKey } from '../../src/kernel/errors.ts';
import { createHash } from 'node:crypto';
import type { KeyIssuer } from '../../src/gateway/key-issuer.ts';
import { openKeyIssuer } from '../../src/gateway/issuers.ts';
import { currentKey } from '../../src/admin/common.ts';
import { putKey } from '../../src/admin/put.ts';
import { allUsers, rotateKeys } from '../../src/admin/rotate.ts';
import { revokeKey } from '../../src/admin/revoke.ts';
import { SecretNotFound } from '../../src/kernel/errors.ts';
import type { Provider } from '../../providers/provider.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { startFakeLiteLlm, type FakeLiteLlm } from '../fakes/litellm.ts';
import { adminDeps, adminProfile, providerAs, startAwsStore } from './support.ts';
import { memoryCache } from '../broker/fakes.ts';

const CALLER_TTL_MS = 200;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('admin rotate through a LiteLLM gateway', () => {
  let store: HarnessInstance;
  let litellm: FakeLiteLlm;
  let profile: Profile;
  let admin: Provider;
  let developer: Provider;
  let issuer: KeyIssuer;

  beforeAll(async () => {
    store = await startAwsStore();
    litellm = await startFakeLiteLlm();
    profile = adminProfile(store.storeConfig(store.port), {
      cache: { backend: 'none', refreshAfterMs: 400, fallback: 'none' },
      keyIssuer: { type: 'litellm', url: litellm.url, masterKeyEnv: 'TEST_LITELLM_MASTER_KEY' },
    });
    admin = await providerAs(profile, store.adminEnv);
    developer = await providerAs(profile, store.developerEnv);
    issuer = openKeyIssuer(profile.keyIssuer, { env: { TEST_LITELLM_MASTER_KEY: litellm.masterKey }, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await litellm?.stop();
    await store?.stop();
  });

  /** The developer side: `get` with its own cache, as Claude Code's helper runs it. */
  function developerGet(): BrokerDeps {
    return {
      profile,
      cache: memoryCache(),
      openProvider: async () => developer,
      lock: { acquire: async () => async () => {} },
      now: Date.now,
      osUser: () => 'not-the-store-identity',
      callerTtlMs: CALLER_TTL_MS,
      // Not Claude Code calling: the 401 rule is off, the test asks for a re-check itself.
      caller: undefined,
      state: memoryRotationState(),
      warn: () => {},
      debug: () => {},
    };
  }

  async function message(key: string): Promise<number> {
    const response = await fetch(`${litellm.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'ping' }] }),
    });
    await response.text();
    return response.status;
  }

  it('keeps both keys valid during the grace period, only the new one after, and the developer running get is never refused', async () => {
    const { deps } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: [store.developerUser], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const first = (await currentKey(deps, store.developerSecret))!.key;
    expect(await message(first)).toBe(200);

    const get = developerGet();
    const seen: { key: string; status: number }[] = [];
    let slowestRound = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        const started = Date.now();
        const served = await getKey(get);
        seen.push({ key: served.key, status: await message(served.key) });
        slowestRound = Math.max(slowestRound, Date.now() - started);
        await sleep(40);
      }
    })();
    await sleep(500);

    const graceMs = 3_000;
    await rotateKeys(deps, { users: [store.developerUser], graceMs, dryRun: false }, CALLER_TTL_MS);
    const rotatedAt = Date.now();
    const second = (await currentKey(deps, store.developerSecret))!.key;
    expect(second).not.toBe(first);
    // Mint, store, then the old key's grace: /key/update gives it `duration` from now.
    expect(litellm.adminCalls.slice(-2).map((call) => call.route)).toEqual(['/key/generate', '/key/update']);
    expect(await message(first)).toBe(200);
    expect(await message(second)).toBe(200);

    await sleep(rotatedAt + graceMs + 200 - Date.now());
    expect(await message(first)).toBe(401);
    expect(await message(second)).toBe(200);
    await sleep(500);
    running = false;
    await loop;

    expect(seen.length).toBeGreaterThan(20);
    expect(seen.filter((request) => request.status !== 200)).toEqual([]);
    expect(seen.some((request) => request.key === first)).toBe(true);
    expect(seen.at(-1)?.key).toBe(second);
    // The developer moved to the new key within the refresh interval, well inside the grace period:
    // the old key's last use came at most one of the developer's own rounds (get, then a message)
    // after that, however long a round takes on this machine.
    const firstNew = litellm.gateway.log.findIndex((request) => request.xApiKey === second);
    const lastOld = litellm.gateway.log.findLastIndex((request) => request.xApiKey === first && request.status === 200);
    expect(litellm.gateway.log[lastOld]!.at - rotatedAt).toBeLessThanOrEqual(profile.cache.refreshAfterMs + slowestRound + 40);
    expect(firstNew).toBeGreaterThan(0);
  });

  it('with no grace mints, writes, then deletes the old key, in that order; a developer recovers through the 401 path', async () => {
    const events: string[] = [];
    const recordingAdmin: Provider = { ...admin, write: async (...args) => (events.push('store write'), admin.write(...args)) };
    const recordingIssuer: KeyIssuer = {
      describe: () => issuer.describe(),
      mint: async (user, alias) => (events.push('mint'), issuer.mint(user, alias)),
      retire: async (key, graceMs) => (events.push(graceMs ? 'grace for old' : 'delete old'), issuer.retire(key, graceMs)),
      revoke: async (keys) => (events.push('delete'), issuer.revoke(keys)),
      revokeUser: async (user) => (events.push('delete user keys'), issuer.revokeUser(user)),
      revokeAlias: async (user, alias) => (events.push('delete by alias'), issuer.revokeAlias(user, alias)),
    };
    const { deps, audit } = adminDeps(recordingAdmin, profile, { issuer: recordingIssuer });
    const get = developerGet();
    get.profile = { ...profile, cache: { ...profile.cache, refreshAfterMs: 60_000 } };
    const before = await getKey(get);
    expect(await message(before.key)).toBe(200);

    await rotateKeys(deps, { users: [store.developerUser], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    expect(events).toEqual(['mint', 'store write', 'delete old']);
    expect(audit.map((entry) => `${entry.action}:${entry.outcome}`)).toEqual([
      'rotate:intent: mint a new key',
      'rotate:intent: store write',
      'rotate:updated',
      'revoke:old key deleted at the gateway',
    ]);

    const cached = await getKey(get);
    expect(cached.key).toBe(before.key);
    expect(await message(cached.key)).toBe(401);
    // Claude Code's answer to a 401: run the helper again, which must look past its cache.
    const recovered = await getKey(get, { recheck: true });
    expect(recovered.key).not.toBe(before.key);
    expect(await message(recovered.key)).toBe(200);
  });

  it('--dry-run shows the plan and changes nothing, at the gateway or in the store', async () => {
    const { deps, output } = adminDeps(admin, profile, { issuer });
    const before = await currentKey(deps, store.developerSecret);
    const calls = litellm.adminCalls.length;
    await rotateKeys(deps, { users: [store.developerUser], graceMs: 86_400_000, dryRun: true }, CALLER_TTL_MS);
    expect(litellm.adminCalls.length).toBe(calls);
    expect((await currentKey(deps, store.developerSecret))?.version).toBe(before?.version);
    expect(output.out.join('')).toMatch(
      /alice: 1\. mint a new key at LiteLLM .*; 2\. write it as a new version of "claude-code\/keys\/alice" .*; 3\. retire the old key at the gateway after a grace period of 1d/,
    );
  });

  it('warns when the grace period is shorter than a developer may keep the old key', async () => {
    const { deps, output } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: [store.developerUser], graceMs: 500, dryRun: true }, CALLER_TTL_MS);
    expect(output.err).toEqual([
      "keybroker: warning: a grace period of 500ms is shorter than the 800ms a developer may keep the old key (refresh interval + 2 × Claude Code's TTL): some will see one 401 and recover through it",
    ]);
  });

  it('--all rotates every developer under the template, each to a key the gateway accepts', async () => {
    const { deps } = adminDeps(admin, profile, { issuer });
    for (const user of ['bob', 'carol']) await putKey(deps, { user, key: (await issuer.mint(user)).key });
    const users = await allUsers(deps);
    expect(users).toEqual(['alice', 'bob', 'carol']);
    const before = await Promise.all(users.map((user) => currentKey(deps, `claude-code/keys/${user}`)));
    const rotated = await rotateKeys(deps, { users, graceMs: 60_000, dryRun: false }, CALLER_TTL_MS);
    expect(rotated.map((result) => result.user)).toEqual(users);
    for (const [index, user] of users.entries()) {
      const after = (await currentKey(deps, `claude-code/keys/${user}`))!;
      expect(after.version).not.toBe(before[index]!.version);
      expect(await message(after.key)).toBe(200);
    }
  });

  it('refuses a wrong master key without showing it, naming the variable to fix', async () => {
    const wrong = openKeyIssuer(profile.keyIssuer, { env: { TEST_LITELLM_MASTER_KEY: 'sk-test-not-the-master' }, timeoutMs: 5_000 });
    const error = await wrong.mint('alice').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).line()).toContain('TEST_LITELLM_MASTER_KEY');
    expect((error as NotAuthenticated).line()).not.toContain('sk-test-not-the-master');
  });

  it('a failed store write deletes the minted key at the gateway, starts no grace for the old key, audits the rollback and names the write', async () => {
    const failingAdmin: Provider = {
      ...admin,
      write: async () =>
        Promise.reject(
          new AccessDenied(
            'AWS Secrets Manager denied PutSecretValue on "claude-code/keys/alice"',
            'ask for secretsmanager:PutSecretValue',
          ),
        ),
    };
    const { deps, output, audit } = adminDeps(failingAdmin, profile, { issuer });
    const before = (await currentKey(deps, store.developerSecret))!;
    const issuedBefore = litellm.keys.length;
    const error = await rotateKeys(deps, { users: [store.developerUser], graceMs: 60_000, dryRun: false }, CALLER_TTL_MS).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(AccessDenied);
    // Exactly one key was minted, and it is dead; nothing else at the gateway changed.
    const minted = litellm.keys.slice(issuedBefore);
    expect(minted).toHaveLength(1);
    expect(litellm.accepts(minted[0]!.key)).toBe(false);
    expect(litellm.adminCalls.slice(-2).map((call) => call.route)).toEqual(['/key/generate', '/key/delete']);
    // The old key works with no grace started (its expiry untouched), and is still the stored one.
    expect(await message(before.key)).toBe(200);
    expect(litellm.keys.find((entry) => entry.key === before.key)!.expires).toBeNull();
    expect((await currentKey(deps, store.developerSecret))!.version).toBe(before.version);
    expect(output.err.join('\n')).toMatch(
      /alice: writing the new key to "claude-code\/keys\/alice" failed, so the key just minted at LiteLLM .* was deleted there; the old key is unchanged and still works/,
    );
    expect(output.err.join('\n')).not.toMatch(/read/);
    expect(audit.map((entry) => `${entry.action}:${entry.outcome}`)).toEqual([
      'rotate:intent: mint a new key',
      'rotate:intent: store write',
      'rotate:failed: store write: AWS Secrets Manager denied PutSecretValue on "claude-code/keys/alice": ask for secretsmanager:PutSecretValue',
      'rotate:rolled back: the store refused the write; the minted key was deleted at the gateway; the old key is unchanged',
    ]);
  });

  it('when the write and the clean-up both fail, the audit and the message name the live key by its hashed token, never the key', async () => {
    const failingAdmin: Provider = {
      ...admin,
      write: async () =>
        Promise.reject(
          new AccessDenied(
            'AWS Secrets Manager denied PutSecretValue on "claude-code/keys/alice"',
            'ask for secretsmanager:PutSecretValue',
          ),
        ),
    };
    const { deps, output, audit } = adminDeps(failingAdmin, profile, { issuer });
    const issuedBefore = litellm.keys.length;
    litellm.failNext('/key/delete', 500);
    await expect(rotateKeys(deps, { users: [store.developerUser], graceMs: 0, dryRun: false }, CALLER_TTL_MS)).rejects.toBeInstanceOf(
      AccessDenied,
    );
    const minted = litellm.keys.slice(issuedBefore)[0]!;
    const token = createHash('sha256').update(minted.key).digest('hex');
    expect(audit.at(-1)!.outcome).toContain(`delete token ${token} by hand`);
    expect(output.err.join('\n')).toContain(`POST /key/delete {"keys": ["${token}"]}`);
    expect(JSON.stringify([audit, output.err])).not.toContain(minted.key);
    await issuer.revoke([minted.key]);
  });

  it("revoke of a secret whose value cannot be parsed still deletes the developer's keybroker keys at the gateway", async () => {
    const { deps, audit, output } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: ['erin'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const key = (await currentKey(deps, 'claude-code/keys/erin'))!.key;
    await admin.write('claude-code/keys/erin', '{"api_key": ', { labels: {} });
    expect(await message(key)).toBe(200);
    await revokeKey(deps, { user: 'erin', purge: false });
    expect(await message(key)).toBe(401);
    expect(audit.slice(-2).map((entry) => `${entry.action}:${entry.outcome}`)).toEqual([
      'revoke:1 key deleted at the gateway (the stored value is unreadable; 1 key keybroker minted for this user)',
      'revoke:disabled (recoverable)',
    ]);
    expect(output.out.at(-1)).toMatch(/erin: secret "claude-code\/keys\/erin" disabled \(recoverable\); 1 key deleted at LiteLLM/);
  });

  it('revoke fails loudly, naming the manual step, when an unparsable key cannot be retired at the gateway', async () => {
    const { deps, audit, output } = adminDeps(admin, profile, { issuer });
    await putKey(deps, { user: 'fay', key: 'sk-test-put-by-hand-fay' });
    await admin.write('claude-code/keys/fay', 'not a key at all', { labels: {} });
    const error = await revokeKey(deps, { user: 'fay', purge: false }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnusableKey);
    expect((error as UnusableKey).line()).toMatch(
      /holds no key keybroker minted for fay: a key put there another way may still work: check fay's keys at the gateway and delete them by hand/,
    );
    expect(output.err.at(-1)).toMatch(/fay: secret "claude-code\/keys\/fay" disabled \(recoverable\), but the gateway key was not retired/);
    expect(audit.map((entry) => `${entry.action}:${entry.outcome}`).slice(-2)).toEqual([
      'revoke:0 keys deleted at the gateway (the stored value is unreadable; 0 keys keybroker minted for this user)',
      'revoke:disabled (recoverable)',
    ]);
    expect(await admin.readCurrent('claude-code/keys/fay').catch((caught: unknown) => caught)).toBeInstanceOf(SecretNotFound);
  });

  it('revoke deletes the key at the gateway first, then disables the secret: offboarded at once', async () => {
    const { deps, audit, output } = adminDeps(admin, profile, { issuer });
    await rotateKeys(deps, { users: ['dan'], graceMs: 0, dryRun: false }, CALLER_TTL_MS);
    const key = (await currentKey(deps, 'claude-code/keys/dan'))!.key;
    expect(await message(key)).toBe(200);
    await revokeKey(deps, { user: 'dan', purge: false });
    expect(await message(key)).toBe(401);
    expect(await admin.readCurrent('claude-code/keys/dan').catch((caught: unknown) => caught)).toBeInstanceOf(SecretNotFound);
    expect(audit.slice(-2).map((entry) => `${entry.action}:${entry.outcome}`)).toEqual([
      'revoke:1 key deleted at the gateway (the stored key; 0 other keys keybroker minted for this user)',
      'revoke:disabled (recoverable)',
    ]);
    expect(output.out.at(-1)).toMatch(
      /^dan: secret "claude-code\/keys\/dan" disabled \(recoverable\); 1 key deleted at LiteLLM at http.* \(the stored one\)\n$/,
    );
  });
});
