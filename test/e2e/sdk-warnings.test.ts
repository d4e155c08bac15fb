// Issue 16 item 6: `get`'s stderr holds keybroker's own lines only. With "store.profile" set and
// AWS keys also in the environment, the AWS SDK prints a 9-line "Multiple credential sources
// detected" warning through console.warn; keybroker routes it to the debug trace. The built
// binary against a real moto_server.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

let moto: Moto;
let home: TestHome;
const key = 'sk-test-sdk-warning-quiet';
const secret = 'e2e/sdk-warnings/1';

beforeAll(async () => {
  moto = await startMoto();
  home = makeTestHome(awsConfig(moto.endpoint, { secret, cache: { backend: 'none' } }, { profile: 'dev' }));
  fs.writeFileSync(
    path.join(home.dir, 'aws-config'),
    '[profile dev]\nregion = us-east-1\naws_access_key_id = testing\naws_secret_access_key = testing\n',
  );
  await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', key]);
});
afterAll(async () => {
  await moto?.stop();
  home?.remove();
});

describe('an SDK warning on a get with store.profile and AWS keys in the environment', () => {
  const env = (extra: NodeJS.ProcessEnv = {}) => home.env({ AWS_CONFIG_FILE: path.join(home.dir, 'aws-config'), ...extra });

  it('does not reach stderr: the key on stdout, stderr empty', async () => {
    expect(env()['AWS_ACCESS_KEY_ID']).toBeTruthy();
    const result = await runBinary([], { env: env() });
    expect(result).toMatchObject({ code: 0, stdout: key, stderr: '' });
  });

  it('does not reach stderr on a failure either: one keybroker line', async () => {
    const result = await runBinary([], { env: env({ KEYBROKER_SECRET: 'e2e/sdk-warnings/absent' }) });
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/^keybroker: [^\n]+\n$/);
    expect(result.stderr).not.toContain('Multiple credential sources');
  });

  it('is in the debug trace, as one line', async () => {
    const result = await runBinary(['--verbose'], { env: env() });
    expect(result).toMatchObject({ code: 0, stdout: key });
    const lines = result.stderr.split('\n').filter((line) => line.includes('Multiple credential sources detected'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^keybroker: debug: a library said \(console\.warn\): @aws-sdk\/credential-provider-node/);
    expect(result.stderr.split('\n').every((line) => line === '' || line.startsWith('keybroker: '))).toBe(true);
  });
});
