// What is special about GCP Secret Manager beyond the shared contract: the escaped names and
// labels, version states, the payload checksum, and where the developer's e-mail comes from.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import type { StoreConfig } from '../../providers/provider.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { AccessDenied, ConfigError, NotAuthenticated, SecretNotFound, StoreUnreachable, UnusableKey } from '../../src/kernel/errors.ts';
import {
  crc32c,
  decodeLabels,
  encodeLabels,
  mapGcpError,
  nameForSecretId,
  payloadText,
  secretIdFor,
  summaryOf,
} from '../../providers/gcp.ts';
import type { Provider } from '../../providers/provider.ts';
import { referenceCrc32c } from '../fakes/gcp.ts';
import { closedPort } from '../support/fault-proxy.ts';
import { inEnvironment, withEnvironment } from '../support/environment.ts';
import { ADMIN, ALICE, BOB, CAROL, GCP_PROJECT, escapedSecretId, startGcpTestBed, type GcpTestBed } from './gcp.harness.ts';

const ALICE_SECRET = 'claude-code/keys/alice@example.com';

describe('GCP names and checksums', () => {
  it('computes CRC32C (Castagnoli) as Secret Manager does', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    const sample = Buffer.from('sk-test-checksum-sample-✓');
    expect(crc32c(sample)).toBe(referenceCrc32c(sample));
  });

  it('maps a logical name with "/" and an e-mail to a valid secret id and back', () => {
    expect(secretIdFor(ALICE_SECRET)).toBe('claude-code_2fkeys_2falice_40example_2ecom');
    expect(secretIdFor(ALICE_SECRET)).toMatch(/^[A-Za-z0-9_-]{1,255}$/);
    expect(nameForSecretId(secretIdFor(ALICE_SECRET))).toBe(ALICE_SECRET);
    expect(secretIdFor('claude-code-keys-alice')).toBe('claude-code-keys-alice');
  });

  it('never maps two names to one secret id', () => {
    const names = ['a/b', 'a_b', 'a_2fb', 'a-b', 'a.b', 'A/b', 'ä/b'];
    expect(new Set(names.map(secretIdFor)).size).toBe(names.length);
    for (const name of names) expect(nameForSecretId(secretIdFor(name))).toBe(name);
  });

  it('does not claim a secret id it would not have written (a needless escape names another secret)', () => {
    expect(nameForSecretId('claude-code_2dkeys')).toBeUndefined();
    expect(nameForSecretId('my_secret')).toBeUndefined();
    expect(nameForSecretId('claude-code-keys')).toBe('claude-code-keys');
  });

  it('escapes label values into GCP label rules and reads them back', () => {
    const labels = encodeLabels({ 'managed-by': 'keybroker', 'keybroker-user': 'Alice.Smith@example.com' });
    expect(labels).toEqual({ 'managed-by': 'keybroker', 'keybroker-user': '_41lice_2e_53mith_40example_2ecom' });
    for (const value of Object.values(labels)) expect(value).toMatch(/^[a-z0-9_-]{0,63}$/);
    expect(decodeLabels(labels)['keybroker-user']).toBe('Alice.Smith@example.com');
  });

  it('refuses a name too long for a secret id with a ConfigError', () => {
    expect(() => secretIdFor('x/'.repeat(100))).toThrow(ConfigError);
  });
});

describe('GCP helpers', () => {
  const CALL = {
    what: 'AccessSecretVersion',
    secret: 'claude-code/keys/alice',
    where: 'GCP Secret Manager (project p)',
    loginFix: "run 'gcloud auth application-default login'",
    timeoutMs: 5000,
    project: 'p',
  };
  const grpcError = (code: number, details: string) => Object.assign(new Error(`${code} X: ${details}`), { code, details });

  it('maps each gRPC status to the typed error that names the fix', () => {
    const cases: [unknown, new (...args: never[]) => Error, RegExp][] = [
      [grpcError(5, 'Secret not found'), SecretNotFound, /secret "claude-code\/keys\/alice" .* does not exist/],
      [grpcError(9, 'Secret Version [1] is in DISABLED state.'), SecretNotFound, /is disabled \(revoked\)/],
      [grpcError(9, 'something else'), StoreUnreachable, /was refused by/],
      [grpcError(7, 'Secret Manager API has not been used in project p'), AccessDenied, /API is not enabled for project p/],
      [grpcError(7, 'Permission denied or it may not exist'), AccessDenied, /\(or it does not exist\)/],
      [grpcError(16, 'bad token'), NotAuthenticated, /did not accept your credentials/],
      [grpcError(3, 'bad name'), ConfigError, /refused AccessSecretVersion as invalid/],
      [grpcError(4, 'deadline'), StoreUnreachable, /did not answer AccessSecretVersion within 5000 ms/],
      [
        grpcError(14, 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'),
        StoreUnreachable,
        /cannot reach .*ECONNREFUSED 127.0.0.1:1\)/,
      ],
      [grpcError(8, 'quota'), StoreUnreachable, /is throttling requests/],
      [
        Object.assign(new Error('invalid_grant'), {
          response: { data: { error: 'invalid_grant', error_description: 'reauth related error' } },
        }),
        NotAuthenticated,
        /rejected your application default credentials \(invalid_grant: reauth related error\)/,
      ],
      [new Error('Could not load the default credentials.'), NotAuthenticated, /no Google application default credentials/],
      [Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }), StoreUnreachable, /cannot reach Google's sign-in service/],
    ];
    for (const [error, type, message] of cases) {
      const mapped = mapGcpError(error, CALL);
      expect(mapped, (error as Error).message).toBeInstanceOf(type);
      expect(mapped.message).toMatch(message);
    }
  });

  it('reads a payload as text, refusing a checksum that does not match and bytes that are not UTF-8', () => {
    const text = Buffer.from('sk-test-gcp-payload');
    expect(payloadText({ data: text, dataCrc32c: crc32c(text) }, 'version 1')).toBe('sk-test-gcp-payload');
    expect(payloadText({ data: text.toString('base64') }, 'version 1')).toBe('sk-test-gcp-payload');
    // proto3 optional: a checksum field the server did not set is no checksum.
    expect(payloadText({ data: text, dataCrc32c: 0, _dataCrc32c: undefined }, 'version 1')).toBe('sk-test-gcp-payload');
    expect(() => payloadText({ data: text, dataCrc32c: crc32c(text) + 1 }, 'version 1')).toThrow(StoreUnreachable);
    const binary = Buffer.from([0xff, 0xfe, 0x00]);
    expect(() => payloadText({ data: binary, dataCrc32c: crc32c(binary) }, 'version 1')).toThrow(UnusableKey);
  });

  it('lists a secret enabled only when its newest version is, with its labels unescaped and its times', () => {
    const secret = { labels: encodeLabels({ 'keybroker-user': 'alice@example.com' }), createTime: { seconds: '1767322800', nanos: 5e8 } };
    const summary = summaryOf(ALICE_SECRET, secret, {
      name: 'projects/p/secrets/x/versions/3',
      state: 'ENABLED',
      createTime: { seconds: 1767326400 },
    });
    expect(summary).toEqual({
      name: ALICE_SECRET,
      enabled: true,
      version: '3',
      labels: { 'keybroker-user': 'alice@example.com' },
      createdAt: new Date(1767322800_500),
      updatedAt: new Date(1767326400_000),
    });
    expect(summaryOf(ALICE_SECRET, secret, { name: 'projects/p/secrets/x/versions/3', state: 'DISABLED' }).enabled).toBe(false);
    expect(summaryOf(ALICE_SECRET, {}, undefined)).toEqual({ name: ALICE_SECRET, enabled: false, labels: {} });
  });
});

describe('GCP Secret Manager provider against the gRPC fake', () => {
  let bed: GcpTestBed;
  const store = (extra: Record<string, unknown> = {}): StoreConfig => ({ ...bed.storeConfig(), ...extra });
  const profile = (storeConfig: StoreConfig, timeoutMs = 5_000): Profile => ({
    name: 'gcp-test',
    store: storeConfig,
    secret: 'unused',
    field: 'api_key',
    user: 'store',
    timeoutMs,
    cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
  });
  /** A provider whose every call runs with `env` as process.env (the library reads it). */
  async function providerFor(env: NodeJS.ProcessEnv, storeConfig = store()): Promise<Provider> {
    return inEnvironment(env, await withEnvironment(env, () => openProvider(profile(storeConfig), { env, debug: () => {} })));
  }
  const rawError = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error: { code?: number; details?: string }) => error,
    );

  beforeAll(async () => {
    bed = await startGcpTestBed();
  });
  afterAll(async () => {
    await bed?.stop();
  });

  describe('the fake rejects what Secret Manager rejects', () => {
    it('answers UNAUTHENTICATED to a call without a token or with an unknown one', async () => {
      await bed.seed(ALICE_SECRET, 'sk-test-gcp-raw');
      const name = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId(ALICE_SECRET)}/versions/latest`;
      const missing = await rawError(bed.fake.rawCall('AccessSecretVersion', { name }, undefined));
      expect(missing).toMatchObject({ code: 16 });
      expect(missing?.details).toMatch(/missing required authentication credential/);
      expect(await rawError(bed.fake.rawCall('AccessSecretVersion', { name }, 'test-access-token-forged'))).toMatchObject({ code: 16 });
      expect(await bed.fake.rawCall('AccessSecretVersion', { name }, bed.fake.issueToken(ALICE.email))).toMatchObject({
        name: expect.stringMatching(/^projects\/284019283746\//),
      });
    });

    it("answers PERMISSION_DENIED to a developer reading another developer's secret", async () => {
      await bed.seed('claude-code/keys/bob@example.com', 'sk-test-gcp-bob');
      const name = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId('claude-code/keys/bob@example.com')}/versions/latest`;
      const error = await rawError(bed.fake.rawCall('AccessSecretVersion', { name }, bed.fake.issueToken(ALICE.email)));
      expect(error).toMatchObject({ code: 7 });
      expect(error?.details).toContain('secretmanager.versions.access');
    });

    it('answers INVALID_ARGUMENT to a secret id outside [A-Za-z0-9_-] and to a secret without replication', async () => {
      const token = await bed.adminToken();
      const parent = `projects/${GCP_PROJECT.id}`;
      expect(
        await rawError(
          bed.fake.rawCall('CreateSecret', { parent, secretId: 'claude-code/keys/x', secret: { replication: { automatic: {} } } }, token),
        ),
      ).toMatchObject({ code: 3 });
      expect(await rawError(bed.fake.rawCall('CreateSecret', { parent, secretId: 'no-replication', secret: {} }, token))).toMatchObject({
        code: 3,
      });
    });

    it('answers INVALID_ARGUMENT to a payload whose CRC32C does not match', async () => {
      const token = await bed.adminToken();
      const parent = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId(ALICE_SECRET)}`;
      const data = Buffer.from('sk-test-gcp-crc');
      expect(
        await rawError(
          bed.fake.rawCall('AddSecretVersion', { parent, payload: { data, dataCrc32c: String(referenceCrc32c(data) ^ 1) } }, token),
        ),
      ).toMatchObject({ code: 3 });
    });
  });

  it('reads a pinned version (store.version) while newer ones exist', async () => {
    const admin = await providerFor(bed.envFor(ADMIN));
    const first = await admin.write('claude-code/pinned/alice', 'sk-test-gcp-pinned-1', { labels: {} });
    await admin.write('claude-code/pinned/alice', 'sk-test-gcp-pinned-2', { labels: {} });
    const pinned = await providerFor(bed.envFor(ADMIN), store({ version: first.version }));
    expect(await pinned.readCurrent('claude-code/pinned/alice')).toEqual({ value: 'sk-test-gcp-pinned-1', version: first.version });
  });

  it('reports a disabled latest version as SecretNotFound naming the state, and the key again once enabled', async () => {
    const admin = await providerFor(bed.envFor(ADMIN));
    const written = await admin.write('claude-code/states/disabled', 'sk-test-gcp-disabled', { labels: {} });
    const versionName = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId('claude-code/states/disabled')}/versions/${written.version}`;
    await bed.fake.rawCall('DisableSecretVersion', { name: versionName }, await bed.adminToken());
    const error = await admin.readCurrent('claude-code/states/disabled').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SecretNotFound);
    expect((error as Error).message).toMatch(/disabled/);
    await bed.fake.rawCall('EnableSecretVersion', { name: versionName }, await bed.adminToken());
    expect((await admin.readCurrent('claude-code/states/disabled')).value).toBe('sk-test-gcp-disabled');
  });

  it('reports a destroyed latest version as SecretNotFound naming the state', async () => {
    const admin = await providerFor(bed.envFor(ADMIN));
    const written = await admin.write('claude-code/states/destroyed', 'sk-test-gcp-destroyed', { labels: {} });
    const name = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId('claude-code/states/destroyed')}/versions/${written.version}`;
    await bed.fake.rawCall('DestroySecretVersion', { name }, await bed.adminToken());
    const error = await admin.readCurrent('claude-code/states/destroyed').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SecretNotFound);
    expect((error as Error).message).toMatch(/destroyed/);
  });

  it('refuses a payload whose CRC32C does not match, never returning it', async () => {
    await bed.seed(ALICE_SECRET, 'sk-test-gcp-corrupted');
    const alice = await providerFor(bed.envFor(ALICE));
    bed.fake.faults.corruptChecksum = true;
    try {
      const error = await alice.readCurrent(ALICE_SECRET).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(StoreUnreachable);
      expect((error as Error).message).toMatch(/CRC32C/);
      expect((error as Error).message).not.toContain('sk-test-gcp-corrupted');
    } finally {
      bed.fake.faults.corruptChecksum = false;
    }
    expect((await alice.readCurrent(ALICE_SECRET)).value).toBe('sk-test-gcp-corrupted');
  });

  it('waits the RetryInfo delay a RESOURCE_EXHAUSTED answer carries before reading again', async () => {
    await bed.seed(ALICE_SECRET, 'sk-test-gcp-retry-info');
    const alice = await providerFor(bed.envFor(ALICE));
    await alice.whoami(); // the token first, so the timing below is the reads'
    const before = bed.fake.throttledReads();
    bed.fake.throttleReads(1, 1_200);
    const started = Date.now();
    try {
      expect((await alice.readCurrent(ALICE_SECRET)).value).toBe('sk-test-gcp-retry-info');
    } finally {
      bed.fake.throttleReads(0);
    }
    expect(bed.fake.throttledReads() - before).toBe(1);
    // Without the RetryInfo the wait would be our first back-off (150 ms); the answer asked for 1.2 s.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_180);
  });

  it('reports a revoked refresh token as NotAuthenticated with the gcloud login command', async () => {
    const env = bed.envFor(BOB);
    bed.fake.revokeRefreshToken(BOB.refreshToken);
    const bob = await providerFor(env);
    const error = await bob.readCurrent('claude-code/keys/bob@example.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).line()).toContain('invalid_grant');
    expect((error as NotAuthenticated).line()).toContain("run 'gcloud auth application-default login'");
  });

  it('finds the ADC file where gcloud writes it (~/.config/gcloud) with no variable set', async () => {
    const env = bed.homeEnvFor(ALICE);
    expect(env['GOOGLE_APPLICATION_CREDENTIALS']).toBeUndefined();
    await bed.seed(ALICE_SECRET, 'sk-test-gcp-well-known');
    expect((await (await providerFor(env)).readCurrent(ALICE_SECRET)).value).toBe('sk-test-gcp-well-known');
  });

  it('reports an unreachable Google sign-in (token endpoint) as StoreUnreachable', async () => {
    const dir = path.join(bed.root, 'offline-adc');
    const file = bed.fake.writeAdcFile(dir, ALICE);
    const adc = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    fs.writeFileSync(file, JSON.stringify({ ...adc, token_uri: `http://127.0.0.1:${await closedPort()}/token` }));
    const offline = await providerFor({
      PATH: process.env['PATH'],
      HOME: dir,
      METADATA_SERVER_DETECTION: 'none',
      GOOGLE_APPLICATION_CREDENTIALS: file,
    });
    const error = await offline.whoami().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect((error as Error).message).toMatch(/sign-in/);
  });

  it('takes the e-mail from tokeninfo when the token response carries no id_token', async () => {
    const carol = await providerFor(bed.envFor(CAROL));
    expect(await carol.whoami()).toEqual({ user: CAROL.email, principal: `user:${CAROL.email}` });
  });

  it('finds the ADC file that GOOGLE_APPLICATION_CREDENTIALS names, and names it in the fix when it fails', async () => {
    const aliceHome = bed.homeEnvFor(ALICE)['HOME']!;
    const env = {
      PATH: process.env['PATH'],
      HOME: path.join(bed.root, 'empty'),
      METADATA_SERVER_DETECTION: 'none',
      GOOGLE_APPLICATION_CREDENTIALS: path.join(aliceHome, '.config/gcloud/application_default_credentials.json'),
    };
    expect((await (await providerFor(env)).whoami()).user).toBe(ALICE.email);
    const missing = { ...env, GOOGLE_APPLICATION_CREDENTIALS: path.join(bed.root, 'absent.json') };
    const error = await (await providerFor(missing)).readCurrent(ALICE_SECRET).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).fix).toContain('GOOGLE_APPLICATION_CREDENTIALS');
  });

  it('reports a project the developer has no rights in as AccessDenied', async () => {
    const alice = await providerFor(bed.envFor(ALICE), store({ project: 'someone-elses-project' }));
    expect(await alice.readCurrent(ALICE_SECRET).catch((caught: unknown) => caught)).toBeInstanceOf(AccessDenied);
  });

  it('reports a project without the Secret Manager API as AccessDenied with the gcloud command that enables it', async () => {
    const alice = await providerFor(bed.envFor(ALICE));
    bed.fake.faults.apiDisabled = true;
    try {
      const error = await alice.readCurrent(ALICE_SECRET).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AccessDenied);
      expect((error as AccessDenied).fix).toContain(`gcloud services enable secretmanager.googleapis.com --project ${GCP_PROJECT.id}`);
    } finally {
      bed.fake.faults.apiDisabled = false;
    }
  });

  it('stores an e-mail label escaped in GCP and lists it as written', async () => {
    const admin = await providerFor(bed.envFor(ADMIN));
    await admin.write('claude-code/labels/alice', 'sk-test-gcp-labels', {
      labels: { 'managed-by': 'keybroker', 'keybroker-user': ALICE.email },
    });
    const secret = await bed.fake.rawCall<{ labels: Record<string, string> }>(
      'GetSecret',
      { name: `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId('claude-code/labels/alice')}` },
      await bed.adminToken(),
    );
    expect(secret.labels['keybroker-user']).toBe('alice_40example_2ecom');
    const listed = [];
    for await (const summary of admin.list('claude-code/labels/')) listed.push(summary);
    expect(listed.map((summary) => [summary.name, summary.labels['keybroker-user']])).toEqual([['claude-code/labels/alice', ALICE.email]]);
  });

  it("lists through the store's own pages", async () => {
    const admin = await providerFor(bed.envFor(ADMIN));
    for (let index = 0; index < 105; index++) await bed.seed(`claude-code/many/user${String(index).padStart(3, '0')}`, 'sk-test-gcp-many');
    const listed: string[] = [];
    for await (const summary of admin.list('claude-code/many/')) listed.push(summary.name);
    expect(listed).toHaveLength(105);
    expect(bed.fake.calls.filter((call) => call.method === 'ListSecrets').length).toBeGreaterThanOrEqual(2);
  });

  it('rejects an unknown field in the store section', async () => {
    const error = await openProvider(profile({ ...store(), region: 'europe-west1' }), { env: {}, debug: () => {} }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('region');
  });
});
