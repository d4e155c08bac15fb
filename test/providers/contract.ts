// The one contract every provider passes, against its own server (real where one runs here,
// a protocol-faithful fake elsewhere). A provider's harness only says how to start that server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import type { StoreConfig } from '../../providers/provider.ts';
import type { StoreType } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { fetchFromStore } from '../../src/broker/broker.ts';
import { AccessDenied, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../../src/kernel/errors.ts';
import { closedPort, startFaultProxy } from '../support/fault-proxy.ts';
import { inEnvironment, withEnvironment } from '../support/environment.ts';
import { callTime, expectWithinBound, RETRY_BACKOFF_MS } from '../support/time-bounds.ts';
import { storeCallCeilingMs } from '../../src/kernel/retry.ts';

export interface ProviderHarness {
  type: StoreType;
  /** Starts the server with a developer who may read `developerSecret` and not `forbiddenSecret`. */
  start(): Promise<HarnessInstance>;
}

export interface HarnessInstance {
  /** The TCP port the store listens on (127.0.0.1); the suite puts proxies in front of it. */
  port: number;
  /** The profile's `store` section for a store reachable at 127.0.0.1:`port`. */
  storeConfig(port: number): StoreConfig;
  /** The developer's environment: the credentials that ecosystem's own tools would find. */
  developerEnv: NodeJS.ProcessEnv;
  /** An environment whose credentials the store rejects, or where there are none. */
  unauthenticatedEnv: NodeJS.ProcessEnv;
  /** The developer's name to the store, as `{user}` resolves with "user": "store". */
  developerUser: string;
  /** A secret name the developer may read (the template with their name). */
  developerSecret: string;
  /**
   * A secret that exists, with valid credentials that may not read it: the developer's own
   * environment and someone else's secret where the store checks per secret, or another
   * identity without read rights where the server can only check per action (moto).
   */
  forbidden: { env: NodeJS.ProcessEnv; secret: string };
  /** The admin's environment: credentials that may write, list and revoke every key. */
  adminEnv: NodeJS.ProcessEnv;
  /** Writes a new version as an admin, through a path other than the provider (CLI or server API). */
  seed(name: string, value: string): Promise<void>;
  /**
   * Makes the next `count` reads of a secret answer the way this store throttles (AWS: 400
   * ThrottlingException; Key Vault and Vault: 429 with Retry-After; GCP: RESOURCE_EXHAUSTED).
   */
  throttleReads(count: number): Throttle;
  /** The fix a NotAuthenticated error must name (the ecosystem's own login command). */
  loginFix: RegExp;
  stop(): Promise<void>;
}

interface Throttle {
  /**
   * The least wait before a throttled read is sent again: the Retry-After the store's answer asks
   * for, or, when it names none, the retry policy's floor for a throttling answer.
   */
  leastWaitMs: number;
  /** Throttled answers given so far. */
  given(): number;
  /** Answers normally again. */
  stop(): void;
}

function profileFor(store: StoreConfig, timeoutMs = 5_000): Profile {
  return {
    name: 'contract',
    store,
    secret: 'unused',
    field: 'api_key',
    user: 'store',
    timeoutMs,
    cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
  };
}

export function describeProviderContract(harness: ProviderHarness): void {
  describe(`provider contract: ${harness.type}`, () => {
    let server: HarnessInstance;
    let provider: Provider;
    const open = async (store: StoreConfig, env: NodeJS.ProcessEnv, timeoutMs?: number, onThrottle?: (waitMs: number) => void) =>
      inEnvironment(
        env,
        await withEnvironment(env, () =>
          openProvider(profileFor(store, timeoutMs), { env, debug: () => {}, ...(onThrottle ? { onThrottle } : {}) }),
        ),
      );

    beforeAll(async () => {
      server = await harness.start();
      provider = await open(server.storeConfig(server.port), server.developerEnv);
    });
    /** The yardstick for time bounds here: one read through a fresh provider, as long as it takes on this machine now. */
    const oneRead = () =>
      callTime(`one ${harness.type} read through a new provider`, async () => {
        const fresh = await open(server.storeConfig(server.port), server.developerEnv);
        await fresh.readCurrent(server.developerSecret).catch(() => {});
      });
    afterAll(async () => {
      await server?.stop();
    });

    it('says who the developer is to the store', async () => {
      const identity = await provider.whoami();
      expect(identity.user).toBe(server.developerUser);
      expect(identity.principal.length).toBeGreaterThan(0);
    });

    it('reads the current value and its version', async () => {
      await server.seed(server.developerSecret, 'sk-test-contract-first');
      const current = await provider.readCurrent(server.developerSecret);
      expect(current.value).toBe('sk-test-contract-first');
      expect(current.version).not.toBe('');
    });

    it('reads the new value and a new version after an admin writes one', async () => {
      await server.seed(server.developerSecret, 'sk-test-contract-before');
      const before = await provider.readCurrent(server.developerSecret);
      await server.seed(server.developerSecret, 'sk-test-contract-after');
      const after = await provider.readCurrent(server.developerSecret);
      expect(after.value).toBe('sk-test-contract-after');
      expect(after.version).not.toBe(before.version);
    });

    it('takes the key from the JSON field, with expires_at', async () => {
      await server.seed(
        server.developerSecret,
        JSON.stringify({ api_key: 'sk-test-contract-json', expires_at: '2031-05-06T07:08:09Z', team: 'ml' }),
      );
      const entry = await fetchFromStore({
        profile: { ...profileFor(server.storeConfig(server.port)), secret: server.developerSecret },
        openProvider: async () => provider,
        osUser: () => 'unused',
        now: () => Date.parse('2030-01-01T00:00:00Z'),
      });
      expect(entry.key).toBe('sk-test-contract-json');
      expect(entry.expiresAt).toBe(Date.parse('2031-05-06T07:08:09Z'));
      expect(entry.secret).toBe(server.developerSecret);
    });

    it('resolves {user} from the store identity', async () => {
      await server.seed(server.developerSecret, 'sk-test-contract-template');
      const template = server.developerSecret.replace(server.developerUser, '{user}');
      expect(template).toContain('{user}');
      const entry = await fetchFromStore({
        profile: { ...profileFor(server.storeConfig(server.port)), secret: template },
        openProvider: async () => provider,
        osUser: () => 'not-this-one',
        now: Date.now,
      });
      expect(entry.key).toBe('sk-test-contract-template');
    });

    it('reports a missing secret as SecretNotFound, naming it', async () => {
      const missing = `${server.developerSecret}-missing`;
      const error = await provider.readCurrent(missing).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SecretNotFound);
      expect((error as Error).message).toContain(missing);
    });

    it('reports a secret the developer may not read as AccessDenied', async () => {
      const outsider = await open(server.storeConfig(server.port), server.forbidden.env);
      const error = await outsider.readCurrent(server.forbidden.secret).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AccessDenied);
      expect((error as AccessDenied).fix.length).toBeGreaterThan(0);
    });

    it('reports missing or rejected credentials as NotAuthenticated with the login command', async () => {
      const stranger = await open(server.storeConfig(server.port), server.unauthenticatedEnv);
      const error = await stranger.readCurrent(server.developerSecret).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(NotAuthenticated);
      expect((error as NotAuthenticated).line()).toMatch(server.loginFix);
    });

    it('reports a store that is down as StoreUnreachable', async () => {
      const down = await open(server.storeConfig(await closedPort()), server.developerEnv, 2_000);
      const yardstick = await oneRead();
      const started = Date.now();
      const error = await down.readCurrent(server.developerSecret).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(StoreUnreachable);
      // Refused connections are retried with back-off, not waited on until the timeout.
      await expectWithinBound('a read from a store that is down', Date.now() - started, RETRY_BACKOFF_MS, yardstick);
    });

    it('gives up on a store that does not answer within the timeout', async () => {
      const proxy = await startFaultProxy(server.port);
      try {
        proxy.set({ kind: 'blackhole' });
        const slow = await open(server.storeConfig(proxy.port), server.developerEnv, 1_000);
        const yardstick = await oneRead();
        const started = Date.now();
        const error = await slow.readCurrent(server.developerSecret).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(StoreUnreachable);
        await expectWithinBound('a read from a store that never answers', Date.now() - started, storeCallCeilingMs(1_000), yardstick);
        expect((error as Error).message).toMatch(/within|timed out|time/i);
      } finally {
        await proxy.stop();
      }
    });

    it('a throttled read is retried as the store asks and succeeds', async () => {
      await server.seed(server.developerSecret, 'sk-test-contract-throttled');
      const waits: number[] = [];
      const counted = await open(server.storeConfig(server.port), server.developerEnv, undefined, (waitMs) => waits.push(waitMs));
      const throttle = server.throttleReads(2);
      const started = Date.now();
      try {
        expect((await counted.readCurrent(server.developerSecret)).value).toBe('sk-test-contract-throttled');
      } finally {
        throttle.stop();
      }
      expect(throttle.given()).toBe(2);
      // Each throttled answer waited what the store asked, or the back-off's floor, and the time
      // passed (less a little timer slack): not an immediate hammering. A read's own time is no
      // measure of that: on a busy machine two reads take longer than the waits.
      expect(waits).toHaveLength(2);
      for (const wait of waits) expect(wait).toBeGreaterThanOrEqual(throttle.leastWaitMs);
      expect(Date.now() - started).toBeGreaterThanOrEqual(waits[0]! + waits[1]! - 20);
    });

    it('a read throttled past the timeout fails as StoreUnreachable saying so, within the bound', async () => {
      const timeoutMs = 3_000;
      const impatient = await open(server.storeConfig(server.port), server.developerEnv, timeoutMs);
      const yardstick = await oneRead();
      const throttle = server.throttleReads(1_000);
      const started = Date.now();
      try {
        const error = await impatient.readCurrent(server.developerSecret).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(StoreUnreachable);
        expect((error as StoreUnreachable).message).toMatch(/is throttling requests/);
        expect((error as StoreUnreachable).fix).toMatch(/try again in a minute/);
      } finally {
        throttle.stop();
      }
      await expectWithinBound('a read throttled past its timeout', Date.now() - started, storeCallCeilingMs(timeoutMs), yardstick);
      expect(throttle.given()).toBeGreaterThan(1);
    });

    it("does not count a bulk action's pacing waits against the timeout: each call held back longer than it still reads", async () => {
      // The limiter of an `admin` bulk action holds every store call until its slot (ProviderContext.paceCall).
      await server.seed(server.developerSecret, 'sk-test-contract-paced');
      // A timeout that a read fits in many times over on this machine now; each call is held longer.
      const timeoutMs = Math.max(1_000, Math.round(10 * (await oneRead()).unitMs));
      let held = 0;
      const paced = await inEnvironment(
        server.developerEnv,
        await withEnvironment(server.developerEnv, () =>
          openProvider(profileFor(server.storeConfig(server.port), timeoutMs), {
            env: server.developerEnv,
            debug: () => {},
            paceCall: async (send) => {
              held++;
              await new Promise((resolve) => setTimeout(resolve, 1.5 * timeoutMs));
              return send();
            },
          }),
        ),
      );
      expect((await paced.readCurrent(server.developerSecret)).value).toBe('sk-test-contract-paced');
      expect(held).toBeGreaterThan(0);
    });

    it('never puts the secret value into an error', async () => {
      await server.seed(server.forbidden.secret, 'sk-test-contract-private');
      const outsider = await open(server.storeConfig(server.port), server.forbidden.env);
      const errors = await Promise.all([
        outsider.readCurrent(server.forbidden.secret).catch((caught: unknown) => caught),
        provider.readCurrent(`${server.developerSecret}-missing`).catch((caught: unknown) => caught),
      ]);
      for (const error of errors)
        expect(JSON.stringify({ m: (error as Error).message, f: (error as NotAuthenticated).fix })).not.toContain(
          'sk-test-contract-private',
        );
    });

    describe('admin operations', () => {
      let admin: Provider;
      const prefix = `claude-code/admin-${harness.type}/`;
      beforeAll(async () => {
        admin = await open(server.storeConfig(server.port), server.adminEnv);
      });

      it("creates a secret that did not exist, labelled as keybroker's", async () => {
        const result = await admin.write(`${prefix}carol`, 'sk-test-admin-carol-1', {
          labels: { 'managed-by': 'keybroker', 'keybroker-user': 'carol' },
        });
        expect(result.created).toBe(true);
        const current = await admin.readCurrent(`${prefix}carol`);
        expect(current.value).toBe('sk-test-admin-carol-1');
        expect(current.version).toBe(result.version);
      });

      it('adds a version to a secret that exists', async () => {
        const first = await admin.write(`${prefix}dave`, 'sk-test-admin-dave-1', { labels: { 'managed-by': 'keybroker' } });
        const second = await admin.write(`${prefix}dave`, 'sk-test-admin-dave-2', { labels: { 'managed-by': 'keybroker' } });
        expect(second.created).toBe(false);
        expect(second.version).not.toBe(first.version);
        expect((await admin.readCurrent(`${prefix}dave`)).value).toBe('sk-test-admin-dave-2');
      });

      it('lists the secrets under a prefix with their current version and labels, never a value', async () => {
        await admin.write(`${prefix}erin`, 'sk-test-admin-erin-1', { labels: { 'managed-by': 'keybroker', 'keybroker-user': 'erin' } });
        await admin.write(`claude-code/elsewhere-${harness.type}/frank`, 'sk-test-admin-frank-1', { labels: {} });
        const listed = [];
        for await (const summary of admin.list(prefix)) listed.push(summary);
        const names = listed.map((summary) => summary.name).sort();
        expect(names).toContain(`${prefix}erin`);
        expect(names.every((name) => name.startsWith(prefix))).toBe(true);
        const erin = listed.find((summary) => summary.name === `${prefix}erin`)!;
        expect(erin.enabled).toBe(true);
        expect(erin.version).toBe((await admin.readCurrent(`${prefix}erin`)).version);
        expect(erin.labels['keybroker-user']).toBe('erin');
        expect(JSON.stringify(listed)).not.toContain('sk-test-admin');
      });

      it('revokes softly: the developer can no longer read it and the admin sees it disabled', async () => {
        await admin.write(`${prefix}gina`, 'sk-test-admin-gina-1', { labels: { 'managed-by': 'keybroker' } });
        await admin.revoke(`${prefix}gina`, { purge: false });
        const error = await admin.readCurrent(`${prefix}gina`).catch((caught: unknown) => caught);
        expect(error).toBeInstanceOf(SecretNotFound);
        const listed = [];
        for await (const summary of admin.list(prefix)) listed.push(summary);
        expect(listed.find((summary) => summary.name === `${prefix}gina`)?.enabled).toBe(false);
      });

      it('an admin write is what the developer reads (the get path)', async () => {
        const written = await admin.write(
          server.developerSecret,
          JSON.stringify({ api_key: 'sk-test-admin-to-developer', created_by: 'contract' }),
          {
            labels: { 'managed-by': 'keybroker', 'keybroker-user': server.developerUser },
          },
        );
        const entry = await fetchFromStore({
          profile: {
            ...profileFor(server.storeConfig(server.port)),
            secret: server.developerSecret.replace(server.developerUser, '{user}'),
          },
          openProvider: async () => provider,
          osUser: () => 'not-this-one',
          now: Date.now,
        });
        expect(entry.key).toBe('sk-test-admin-to-developer');
        expect(entry.version).toBe(written.version);
      });

      it('writing a revoked secret restores it with the new value (re-provisioning)', async () => {
        await admin.write(`${prefix}ivan`, 'sk-test-admin-ivan-1', { labels: { 'managed-by': 'keybroker' } });
        await admin.revoke(`${prefix}ivan`, { purge: false });
        const result = await admin.write(`${prefix}ivan`, 'sk-test-admin-ivan-2', {
          labels: { 'managed-by': 'keybroker', 'keybroker-user': 'ivan' },
        });
        expect((await admin.readCurrent(`${prefix}ivan`)).value).toBe('sk-test-admin-ivan-2');
        expect((await admin.readCurrent(`${prefix}ivan`)).version).toBe(result.version);
        const listed = [];
        for await (const summary of admin.list(prefix)) listed.push(summary);
        const ivan = listed.find((summary) => summary.name === `${prefix}ivan`);
        expect(ivan?.enabled).toBe(true);
        expect(ivan?.labels['keybroker-user']).toBe('ivan');
      });

      it('a write told what a read just found (known) adds a version, creates, and restores a revoked secret as one that checks', async () => {
        const labels = { 'managed-by': 'keybroker', 'keybroker-user': 'judy' };
        const created = await admin.write(`${prefix}judy`, 'sk-test-admin-judy-1', { labels, known: { exists: false } });
        expect(created.created).toBe(true);
        const updated = await admin.write(`${prefix}judy`, 'sk-test-admin-judy-2', { labels, known: { exists: true } });
        expect(updated.created).toBe(false);
        expect(await admin.readCurrent(`${prefix}judy`)).toMatchObject({ value: 'sk-test-admin-judy-2', version: updated.version });
        // A revoked secret reads as SecretNotFound: the write is told it does not exist, and must restore it.
        await admin.revoke(`${prefix}judy`, { purge: false });
        expect(await admin.readCurrent(`${prefix}judy`).catch((caught: unknown) => caught)).toBeInstanceOf(SecretNotFound);
        const restored = await admin.write(`${prefix}judy`, 'sk-test-admin-judy-3', { labels, known: { exists: false } });
        expect(await admin.readCurrent(`${prefix}judy`)).toMatchObject({ value: 'sk-test-admin-judy-3', version: restored.version });
        const listed = [];
        for await (const summary of admin.list(prefix)) listed.push(summary);
        expect(listed.find((summary) => summary.name === `${prefix}judy`)?.enabled).toBe(true);
      });

      it('purges: the secret is gone', async () => {
        await admin.write(`${prefix}hank`, 'sk-test-admin-hank-1', { labels: { 'managed-by': 'keybroker' } });
        await admin.revoke(`${prefix}hank`, { purge: true });
        expect(await admin.readCurrent(`${prefix}hank`).catch((caught: unknown) => caught)).toBeInstanceOf(SecretNotFound);
        const listed = [];
        for await (const summary of admin.list(prefix)) listed.push(summary);
        expect(listed.map((summary) => summary.name)).not.toContain(`${prefix}hank`);
      });
    });
  });
}
