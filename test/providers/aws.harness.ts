// AWS Secrets Manager: a real moto_server enforcing IAM, seeded by an admin with the real aws CLI,
// reached through a proxy that can answer as AWS does when it throttles.
import { execFile } from 'node:child_process';
import { AWS_TEST_CREDENTIALS, startMoto } from '../support/moto.ts';
import { startStoreProxy } from '../support/store-proxy.ts';
import type { ProviderHarness } from './contract.ts';
import { STORE_RETRY_DEFAULTS } from '../../src/kernel/retry.ts';

/** The calls below, made before moto starts enforcing IAM. */
const SETUP_CALLS = 9;

export const awsHarness: ProviderHarness = {
  type: 'aws',
  async start() {
    const moto = await startMoto({ initialNoAuthActions: SETUP_CALLS });
    const keysOf = async (user: string) => {
      await moto.aws(['iam', 'create-user', '--user-name', user]);
      const created = JSON.parse(await moto.aws(['iam', 'create-access-key', '--user-name', user])) as {
        AccessKey: { AccessKeyId: string; SecretAccessKey: string };
      };
      return { AWS_ACCESS_KEY_ID: created.AccessKey.AccessKeyId, AWS_SECRET_ACCESS_KEY: created.AccessKey.SecretAccessKey };
    };
    const allow = (user: string, actions: string[]) =>
      moto.aws([
        'iam',
        'put-user-policy',
        '--user-name',
        user,
        '--policy-name',
        'keybroker',
        '--policy-document',
        JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] }),
      ]);
    const alice = await keysOf('alice');
    await allow('alice', ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret']);
    const admin = await keysOf('keybroker-admin');
    await allow('keybroker-admin', ['secretsmanager:*', 'iam:*']);
    const mallory = await keysOf('mallory');
    const base = { AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', PATH: process.env['PATH'] };
    const adminEnv = { ...process.env, ...AWS_TEST_CREDENTIALS, ...admin };
    const proxy = await startStoreProxy(moto.port);
    return {
      port: Number(new URL(proxy.url).port),
      storeConfig: (port) => ({ type: 'aws', region: 'us-east-1', endpoint: `http://127.0.0.1:${port}` }),
      developerEnv: { ...base, ...alice },
      unauthenticatedEnv: {
        ...base,
        HOME: '/nonexistent',
        AWS_CONFIG_FILE: '/nonexistent/config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials',
      },
      adminEnv: { ...base, ...admin },
      developerUser: 'alice',
      developerSecret: 'claude-code/keys/alice',
      forbidden: { env: { ...base, ...mallory }, secret: 'claude-code/keys/bob' },
      loginFix: /aws sso login|aws configure/,
      async seed(name, value) {
        const put = await runAdmin(moto.endpoint, adminEnv, [
          'secretsmanager',
          'put-secret-value',
          '--secret-id',
          name,
          '--secret-string',
          value,
        ]);
        if (!put)
          await runAdmin(moto.endpoint, adminEnv, ['secretsmanager', 'create-secret', '--name', name, '--secret-string', value], true);
      },
      throttleReads(count) {
        const before = proxy.throttled('GetSecretValue');
        proxy.throttle('GetSecretValue', count);
        // AWS's ThrottlingException names no wait: the SDK's (and our) back-off decides.
        return {
          leastWaitMs: STORE_RETRY_DEFAULTS.baseDelayMs,
          given: () => proxy.throttled('GetSecretValue') - before,
          stop: () => proxy.throttle('GetSecretValue', 0),
        };
      },
      async stop() {
        await proxy.stop();
        await moto.stop();
      },
    };
  },
};

/** The aws CLI as the admin; false when it failed and failure is allowed. */
async function runAdmin(endpoint: string, env: NodeJS.ProcessEnv, args: string[], must = false): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile(
      'aws',
      ['--endpoint-url', endpoint, '--region', 'us-east-1', ...args],
      { env: { ...env, AWS_PAGER: '' } },
      (error, _stdout, stderr) => {
        if (error && must) reject(new Error(`aws ${args.slice(0, 2).join(' ')} failed: ${stderr}`));
        else resolve(!error);
      },
    );
  });
}
