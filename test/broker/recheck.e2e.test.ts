// Issue 16 item 1: an explicit re-check (`get --recheck`, `status --refresh`) reads the store even
// within the 15 s window in which Claude Code's automatic re-runs get the last verdict; a verdict
// given without asking the store says when the store was asked. The built binary, a real
// moto_server written with the real aws CLI, and a gateway that refuses the revoked key.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary, type RunResult } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RECHECK_MIN_INTERVAL_MS } from '../../src/broker/broker.ts';
import { AWS_TEST_CREDENTIALS } from '../support/moto.ts';

let moto: Moto;
let gateway: FakeGateway;
let home: TestHome;
let counter = 0;

beforeAll(async () => {
  moto = await startMoto();
  gateway = await startFakeGateway({ keys: [] });
});
afterAll(async () => {
  await gateway?.stop();
  await moto?.stop();
  home?.remove();
});

async function setup(first: string): Promise<{ secret: string; run(args: string[]): Promise<RunResult> }> {
  home?.remove();
  home = makeTestHome(awsConfig(moto.endpoint, { gateway: gateway.url, cache: { backend: 'file' } }));
  const secret = `e2e/recheck/${++counter}`;
  await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', first]);
  const env = home.env({ KEYBROKER_SECRET: secret, XDG_RUNTIME_DIR: fs.mkdtempSync(path.join(home.dir, 'run-')) });
  return { secret, run: (args) => runBinary(args, { env }) };
}

/**
 * The admin's write, as `aws secretsmanager put-secret-value` sends it, from this process (the aws
 * CLI's Python start-up can take seconds on a loaded machine, and all of this must fit in 15 s).
 */
async function adminPut(secret: string, value: string): Promise<void> {
  const client = new SecretsManagerClient({
    endpoint: moto.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: AWS_TEST_CREDENTIALS.AWS_ACCESS_KEY_ID, secretAccessKey: AWS_TEST_CREDENTIALS.AWS_SECRET_ACCESS_KEY },
  });
  await client.send(new PutSecretValueCommand({ SecretId: secret, SecretString: value }));
  client.destroy();
}

/** The second call must land inside the window the first one opened, or the test shows nothing. */
function expectWithinWindow(since: number): void {
  expect(performance.now() - since, 'the re-check happened within the 15 s window (a slower machine cannot show this)').toBeLessThan(
    RECHECK_MIN_INTERVAL_MS,
  );
}

const gatewayChecks = (before: number) => gateway.log.filter((request) => request.path === '/v1/models').length - before;

describe('after "revoked", an admin stores a new key within the re-check window', () => {
  it('get --recheck reads the store and serves the new key', async () => {
    const { secret, run } = await setup('sk-test-recheck-old-1');
    expect((await run(['get'])).stdout).toBe('sk-test-recheck-old-1');
    const asked = performance.now();
    const refused = await run(['get', '--recheck']);
    expect(refused.code).toBe(10);
    expect(refused.stderr).toMatch(/and the store holds no newer one: it was revoked/);
    await adminPut(secret, 'sk-test-recheck-new-1');
    const again = await run(['get', '--recheck']);
    expectWithinWindow(asked);
    expect(again).toMatchObject({ code: 0, stdout: 'sk-test-recheck-new-1' });
  });

  it('status --refresh reads the store and shows the new key cached', async () => {
    const { secret, run } = await setup('sk-test-recheck-old-2');
    expect((await run(['get'])).code).toBe(0);
    const asked = performance.now();
    expect((await run(['status', '--refresh'])).code).toBe(10);
    await adminPut(secret, 'sk-test-recheck-new-2');
    const refreshed = await run(['status', '--refresh', '--json']);
    expectWithinWindow(asked);
    expect(refreshed.code).toBe(0);
    const status = JSON.parse(refreshed.stdout) as { cached: { version: string } };
    const current = JSON.parse(await moto.aws(['secretsmanager', 'describe-secret', '--secret-id', secret])) as {
      VersionIdsToStages: Record<string, string[]>;
    };
    const currentVersion = Object.entries(current.VersionIdsToStages).find(([, stages]) => stages.includes('AWSCURRENT'))![0];
    expect(status.cached.version).toBe(currentVersion);
  });

  it('an explicit re-check of a still-revoked key asks the gateway again (the store was read again too)', async () => {
    const { run } = await setup('sk-test-recheck-old-3');
    expect((await run(['get'])).code).toBe(0);
    const before = gatewayChecks(0);
    const asked = performance.now();
    expect((await run(['get', '--recheck'])).code).toBe(10);
    expect((await run(['get', '--recheck'])).code).toBe(10);
    expectWithinWindow(asked);
    expect(gatewayChecks(before)).toBe(2);
  });
});
