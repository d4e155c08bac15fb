// GCP Secret Manager: the gRPC fake (test/fakes/gcp.ts) with Google's OAuth endpoints; each
// identity is an authorized_user ADC file where gcloud writes it (~/.config/gcloud), and the admin
// seeds through a raw gRPC client of its own, not the SDK.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGcpFake, GCLOUD_CLIENT, type FakeUser, type GcpFake } from '../fakes/gcp.ts';
import type { HarnessInstance, ProviderHarness } from './contract.ts';
import { STORE_RETRY_DEFAULTS } from '../../src/kernel/retry.ts';

export const GCP_PROJECT = { id: 'acme-llm-keys', number: '284019283746' };
export const ALICE: FakeUser = { email: 'alice@example.com', refreshToken: 'test-refresh-token-alice', openid: true };
export const BOB: FakeUser = { email: 'bob@example.com', refreshToken: 'test-refresh-token-bob', openid: true };
export const ADMIN: FakeUser = { email: 'keybroker-admin@example.com', refreshToken: 'test-refresh-token-admin', openid: true };
/** A user whose grant has no openid scope: the e-mail then comes from tokeninfo. */
export const CAROL: FakeUser = { email: 'carol@example.com', refreshToken: 'test-refresh-token-carol', openid: false };

/** The documented secret-id escape (providers/gcp.ts), written again here so the tests check it. */
export function escapedSecretId(name: string): string {
  return [...Buffer.from(name, 'utf8')]
    .map((byte) => (/[A-Za-z0-9-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `_${byte.toString(16).padStart(2, '0')}`))
    .join('');
}

export interface GcpTestBed {
  fake: GcpFake;
  root: string;
  /** A developer environment: GOOGLE_APPLICATION_CREDENTIALS names that user's ADC file; the metadata server off. */
  envFor(user: FakeUser): NodeJS.ProcessEnv;
  /** The same with no variable: the ADC file where gcloud writes it (~/.config/gcloud). */
  homeEnvFor(user: FakeUser): NodeJS.ProcessEnv;
  /** The store section for the fake, or for a proxy in front of it on `port`. */
  storeConfig(port?: number): { type: 'gcp'; project: string; endpoint: string; caFile: string };
  adminToken(): Promise<string>;
  seed(name: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startGcpTestBed(): Promise<GcpTestBed> {
  const fake = await startGcpFake({
    projectId: GCP_PROJECT.id,
    projectNumber: GCP_PROJECT.number,
    users: [ALICE, BOB, ADMIN, CAROL],
    bindings: [
      {
        role: 'roles/secretmanager.secretAccessor',
        member: `user:${ALICE.email}`,
        resourcePrefix: `projects/${GCP_PROJECT.number}/secrets/${escapedSecretId('claude-code/keys/alice@example.com')}`,
      },
      {
        role: 'roles/secretmanager.secretAccessor',
        member: `user:${CAROL.email}`,
        resourcePrefix: `projects/${GCP_PROJECT.number}/secrets/${escapedSecretId('claude-code/keys/carol@example.com')}`,
      },
      { role: 'roles/secretmanager.admin', member: `user:${ADMIN.email}` },
    ],
  });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-gcp-homes-'));
  const homeEnvFor = (user: FakeUser): NodeJS.ProcessEnv => {
    const home = path.join(root, user.email);
    if (!fs.existsSync(home)) fake.writeAdcFile(path.join(home, '.config', 'gcloud'), user);
    return { PATH: process.env['PATH'], HOME: home, METADATA_SERVER_DETECTION: 'none' };
  };
  // Benchmarks and end-to-end runs give the binary a HOME of their own: the variable survives that.
  const envFor = (user: FakeUser): NodeJS.ProcessEnv => {
    const env = homeEnvFor(user);
    return { ...env, GOOGLE_APPLICATION_CREDENTIALS: path.join(env['HOME']!, '.config', 'gcloud', 'application_default_credentials.json') };
  };
  const adminToken = async () => {
    const response = await fetch(fake.tokenUri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: ADMIN.refreshToken,
        client_id: GCLOUD_CLIENT.id,
        client_secret: GCLOUD_CLIENT.secret,
      }),
    });
    return ((await response.json()) as { access_token: string }).access_token;
  };
  return {
    fake,
    root,
    envFor,
    homeEnvFor,
    // localhost, not 127.0.0.1: Node warns on stderr (DEP0123) when TLS names an IP address.
    storeConfig: (port = fake.port) => ({
      type: 'gcp',
      project: GCP_PROJECT.id,
      endpoint: `https://localhost:${port}`,
      caFile: fake.caFile,
    }),
    adminToken,
    async seed(name, value) {
      const token = await adminToken();
      const parent = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId(name)}`;
      const add = () => fake.rawCall('AddSecretVersion', { parent, payload: { data: Buffer.from(value) } }, token);
      try {
        await add();
      } catch (error) {
        if ((error as { code?: number }).code !== 5) throw error;
        await fake.rawCall(
          'CreateSecret',
          { parent: `projects/${GCP_PROJECT.id}`, secretId: escapedSecretId(name), secret: { replication: { automatic: {} } } },
          token,
        );
        await add();
      }
    },
    async stop() {
      await fake.stop();
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

export const gcpHarness: ProviderHarness = {
  type: 'gcp',
  async start(): Promise<HarnessInstance> {
    const bed = await startGcpTestBed();
    const developerEnv = bed.envFor(ALICE);
    return {
      port: bed.fake.port,
      storeConfig: (port) => bed.storeConfig(port),
      developerEnv,
      unauthenticatedEnv: { PATH: process.env['PATH'], HOME: path.join(bed.root, 'nobody'), METADATA_SERVER_DETECTION: 'none' },
      adminEnv: bed.envFor(ADMIN),
      developerUser: ALICE.email,
      developerSecret: 'claude-code/keys/alice@example.com',
      forbidden: { env: developerEnv, secret: 'claude-code/keys/bob@example.com' },
      loginFix: /gcloud auth application-default login/,
      seed: (name, value) => bed.seed(name, value),
      throttleReads(count) {
        const before = bed.fake.throttledReads();
        // No RetryInfo: none is documented for Secret Manager's quota errors, so the client backs off.
        bed.fake.throttleReads(count);
        return {
          leastWaitMs: STORE_RETRY_DEFAULTS.baseDelayMs,
          given: () => bed.fake.throttledReads() - before,
          stop: () => bed.fake.throttleReads(0),
        };
      },
      stop: () => bed.stop(),
    };
  },
};
