// The built single executable serves a developer's key from GCP Secret Manager (the gRPC fake,
// with Google's OAuth endpoints) through a real Secret Service keychain, authenticating with the
// ADC file where `gcloud auth application-default login` writes it.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBinary, type RunResult } from '../support/binary.ts';
import { closedPort, startFaultProxy } from '../support/fault-proxy.ts';
import { expectWithinBound, processStart } from '../support/time-bounds.ts';
import { storeCallCeilingMs } from '../../src/kernel/retry.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { ALICE, GCP_PROJECT, escapedSecretId, startGcpTestBed, type GcpTestBed } from '../providers/gcp.harness.ts';

const ALICE_SECRET = 'claude-code/keys/alice@example.com';

let bed: GcpTestBed;
let keyring: SecretService;
let configFile: string;

function writeConfig(store: object, extra: object = {}): void {
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      profiles: {
        default: { store, secret: 'claude-code/keys/{user}', user: 'store', timeout: '2s', cache: { backend: 'keychain' }, ...extra },
      },
    }),
  );
}

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return cleanEnv({ ...keyring.env, KEYBROKER_CONFIG: configFile, METADATA_SERVER_DETECTION: 'none', ...extra }, keyring.home);
}

function accessCalls(): number {
  return bed.fake.calls.filter((call) => call.method === 'AccessSecretVersion').length;
}

/** Failure shape of SPEC §2: the code, nothing on stdout, exactly one line on stderr. */
function expectFailure(result: RunResult, code: number): string {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
  expect(result.stderr).toMatch(/^keybroker: [^\n]+\n$/);
  return result.stderr;
}

beforeAll(async () => {
  [bed, keyring] = await Promise.all([startGcpTestBed(), startSecretService()]);
  bed.fake.writeAdcFile(path.join(keyring.home, '.config', 'gcloud'), ALICE);
  configFile = path.join(keyring.home, 'keybroker.json');
  writeConfig(bed.storeConfig());
});

afterAll(async () => {
  await Promise.all([bed?.stop(), keyring?.stop()]);
});

describe('keybroker get against GCP Secret Manager, the built binary', () => {
  it('serves the key of {user} = the ADC account e-mail, and caches it in the keychain', async () => {
    await bed.seed(ALICE_SECRET, JSON.stringify({ api_key: 'sk-test-gcp-e2e-1', team: 'ml' }));
    const before = accessCalls();
    const cold = await runBinary([], { env: env() });
    expect(cold).toMatchObject({ code: 0, stdout: 'sk-test-gcp-e2e-1', stderr: '' });
    expect(accessCalls()).toBe(before + 1);

    const accounts = await keyring.accounts('keybroker');
    expect(accounts).toHaveLength(1);
    const cached = JSON.parse((await keyring.lookup({ service: 'keybroker', username: accounts[0]! }))!) as {
      key: string;
      version: string;
      secret: string;
    };
    expect(cached).toMatchObject({ key: 'sk-test-gcp-e2e-1', secret: ALICE_SECRET });

    const warm = await runBinary([], { env: env() });
    expect(warm).toMatchObject({ code: 0, stdout: 'sk-test-gcp-e2e-1', stderr: '' });
    expect(accessCalls()).toBe(before + 1);
  });

  it('fails with exit 4 and the gcloud login command when there are no application default credentials', async () => {
    const home = path.join(keyring.home, 'no-adc');
    fs.mkdirSync(home, { recursive: true });
    const line = expectFailure(await runBinary([], { env: env({ HOME: home, KEYBROKER_CACHE_BACKEND: 'none' }) }), 4);
    expect(line).toContain("run 'gcloud auth application-default login'");
  });

  it('fails with exit 6 for a secret the developer may not read, without its value', async () => {
    await bed.seed('claude-code/keys/bob@example.com', 'sk-test-gcp-e2e-bob');
    const result = await runBinary([], {
      env: env({ KEYBROKER_SECRET: 'claude-code/keys/bob@example.com', KEYBROKER_CACHE_BACKEND: 'none' }),
    });
    const line = expectFailure(result, 6);
    expect(line).toContain('roles/secretmanager.secretAccessor');
    expect(line).not.toContain('sk-test-gcp-e2e-bob');
  });

  it('fails with exit 5 when the latest version is disabled (revoked)', async () => {
    // Within alice's grant (resource.name.startsWith her secret's name), so the read is allowed.
    const secret = `${ALICE_SECRET}-revoked`;
    await bed.seed(secret, 'sk-test-gcp-e2e-revoked');
    const name = `projects/${GCP_PROJECT.id}/secrets/${escapedSecretId(secret)}/versions/1`;
    await bed.fake.rawCall('DisableSecretVersion', { name }, await bed.adminToken());
    const line = expectFailure(await runBinary([], { env: env({ KEYBROKER_SECRET: secret, KEYBROKER_CACHE_BACKEND: 'none' }) }), 5);
    expect(line).toMatch(/disabled/);
  });

  it('fails with exit 7 within the timeout, and exits, when Secret Manager is down or does not answer', async () => {
    const proxy = await startFaultProxy(bed.fake.port);
    proxy.set({ kind: 'blackhole' });
    try {
      for (const port of [await closedPort(), proxy.port]) {
        writeConfig(bed.storeConfig(port), { cache: { backend: 'none' } });
        const yardstick = await processStart();
        const result = await runBinary([], { env: env(), timeoutMs: 60_000 });
        expectFailure(result, 7);
        // timeout 2s per call (identity, then the read): the process must not linger on an open socket.
        await expectWithinBound(
          'a get against a Secret Manager that is down or silent',
          result.ms,
          2 * storeCallCeilingMs(2_000),
          yardstick,
        );
      }
    } finally {
      writeConfig(bed.storeConfig());
      await proxy.stop();
    }
  });
});
