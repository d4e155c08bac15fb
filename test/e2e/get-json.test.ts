// `get --json` for scripts that want the expiry; without the flag the stdout contract is unchanged.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

let moto: Moto;
let home: TestHome;
beforeAll(async () => {
  moto = await startMoto();
  home = makeTestHome(awsConfig(moto.endpoint, { field: 'api_key', cache: { backend: 'file' } }));
});
afterAll(async () => {
  await moto?.stop();
  home?.remove();
});

it('get --json prints {"Version": 1, "key", "version", "expires_at"} on stdout only, from the store and from the cache; plain get still prints the bare key', async () => {
  const secret = 'e2e/get-json/dev';
  await moto.aws([
    'secretsmanager',
    'create-secret',
    '--name',
    secret,
    '--secret-string',
    JSON.stringify({ api_key: 'sk-test-get-json', expires_at: '2027-05-01T00:00:00Z' }),
  ]);
  const env = home.env({ KEYBROKER_SECRET: secret });
  for (const from of ['store', 'cache']) {
    const result = await runBinary(['get', '--json'], { env });
    expect(result.code, from).toBe(0);
    expect(result.stderr, from).toBe('');
    expect(result.stdout.endsWith('}\n')).toBe(true);
    const document = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(document)).toEqual(['Version', 'key', 'version', 'expires_at']);
    expect(document).toMatchObject({ Version: 1, key: 'sk-test-get-json', expires_at: '2027-05-01T00:00:00.000Z' });
    expect(document['version']).toMatch(/^[0-9a-f-]{36}$/);
  }
  const plain = await runBinary(['get'], { env });
  expect(plain).toMatchObject({ code: 0, stdout: 'sk-test-get-json', stderr: '' });

  await moto.aws(['secretsmanager', 'create-secret', '--name', 'e2e/get-json/forever', '--secret-string', 'sk-test-get-json-forever']);
  const noExpiry = await runBinary(['get', '--json'], { env: home.env({ KEYBROKER_SECRET: 'e2e/get-json/forever' }) });
  expect(JSON.parse(noExpiry.stdout)).toMatchObject({ Version: 1, key: 'sk-test-get-json-forever', expires_at: null });

  const missing = await runBinary(['get', '--json'], { env: home.env({ KEYBROKER_SECRET: 'e2e/get-json/missing' }) });
  expect(missing.code).toBe(5);
  expect(missing.stdout).toBe('');
});

it('status --check: the store identity and whether the secret is readable; no cache written, no gateway request; a missing secret exits 5 after the identity', async () => {
  const { startFakeGateway } = await import('../fakes/gateway.ts');
  const gateway = await startFakeGateway({ keys: ['sk-test-status-check'] });
  try {
    const secret = 'e2e/status-check/dev';
    await moto.aws([
      'secretsmanager',
      'create-secret',
      '--name',
      secret,
      '--secret-string',
      JSON.stringify({ api_key: 'sk-test-status-check' }),
    ]);
    const checkHome = makeTestHome(awsConfig(moto.endpoint, { field: 'api_key', cache: { backend: 'file' } }));
    try {
      const env = checkHome.env({ KEYBROKER_SECRET: secret, ANTHROPIC_BASE_URL: gateway.url });
      const result = await runBinary(['status', '--check'], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(
        /^store: {4}AWS Secrets Manager[^\n]*\nyou are: {2}arn:aws:[^\n]+\nsecret: {3}"e2e\/status-check\/dev": readable, version [0-9a-f-]{36}, sha256:[0-9a-f]{8}\n$/,
      );
      const json = JSON.parse((await runBinary(['status', '--check', '--json'], { env })).stdout) as Record<string, unknown>;
      expect(json).toMatchObject({ secret, readable: true });
      expect(checkHome.files().filter((file) => file.includes('keys'))).toEqual([]);
      expect(gateway.log).toEqual([]);

      const missing = await runBinary(['status', '--check'], { env: checkHome.env({ KEYBROKER_SECRET: 'e2e/status-check/none' }) });
      expect(missing.code).toBe(5);
      expect(missing.stdout).toMatch(/^store: .*\nyou are: {2}arn:aws:.*\nsecret: {3}"e2e\/status-check\/none": NOT readable/);
      expect(missing.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      for (const output of [result, missing]) expect(output.stdout + output.stderr).not.toContain('sk-test-status-check');
    } finally {
      checkHome.remove();
    }
  } finally {
    await gateway.stop();
  }
});
