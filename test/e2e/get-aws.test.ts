// Must-show 1: the built binary against a real moto_server, seeded with the real aws CLI.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary, type RunResult } from '../support/binary.ts';
import { closedPort, startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { expectWithinBound, processStart, RETRY_BACKOFF_MS } from '../support/time-bounds.ts';
import { storeCallCeilingMs } from '../../src/kernel/retry.ts';

let moto: Moto;
let home: TestHome;
let blackhole: FaultProxy;
let counter = 0;

beforeAll(async () => {
  moto = await startMoto();
  blackhole = await startFaultProxy(moto.port);
  blackhole.set({ kind: 'blackhole' });
  home = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
});

afterAll(async () => {
  await blackhole?.stop();
  await moto?.stop();
  home?.remove();
});

/** Stores `value` byte for byte (through a file, so nothing is lost in argv) under a new name. */
async function provision(value: string): Promise<string> {
  const name = `e2e/get-aws/${++counter}`;
  const file = path.join(home.dir, `value-${counter}`);
  fs.writeFileSync(file, value);
  await moto.aws(['secretsmanager', 'create-secret', '--name', name, '--secret-string', `file://${file}`]);
  fs.rmSync(file);
  return name;
}

function get(secret: string, extra: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runBinary([], { env: home.env({ KEYBROKER_SECRET: secret, ...extra }) });
}

/** Failure shape of SPEC §2: the code, nothing on stdout, exactly one line on stderr. */
function expectFailure(result: RunResult, code: number): string {
  expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
  expect(result.stderr).toMatch(/^keybroker: [^\n]+\n$/);
  return result.stderr;
}

describe('keybroker get against AWS Secrets Manager (moto), the built binary', () => {
  it('prints a key written with the aws CLI byte for byte, with no newline', async () => {
    const key = 'sk-test-e2e-raw-0123456789abcdefABCDEF_-.~+/=';
    const result = await get(await provision(key));
    expect(result).toMatchObject({ code: 0, stdout: key, stderr: '' });
  });

  it('is what plain `keybroker` (no subcommand) and `keybroker get` both print', async () => {
    const key = 'sk-test-e2e-subcommand';
    const secret = await provision(key);
    const explicit = await runBinary(['get'], { env: home.env({ KEYBROKER_SECRET: secret }) });
    expect(explicit).toMatchObject({ code: 0, stdout: key });
  });

  it('resolves {user} in the secret template from the OS login', async () => {
    const { username } = (await import('node:os')).userInfo();
    const key = 'sk-test-e2e-os-user';
    await moto.aws(['secretsmanager', 'create-secret', '--name', `claude-code/keys/${username}`, '--secret-string', key]);
    const result = await runBinary([], { env: home.env() });
    expect(result).toMatchObject({ code: 0, stdout: key });
  });

  it('prints a key of exactly 16,384 characters, the longest Claude Code accepts', async () => {
    const key = `sk-test-${'k'.repeat(16_384 - 8)}`;
    const result = await get(await provision(key));
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(key);
  });

  it('loads the AWS chunk with the V8 code cache built into the binary (a cold get compiles less)', async () => {
    const result = await runBinary(['--verbose'], { env: home.env({ KEYBROKER_SECRET: await provision('sk-test-e2e-code-cache') }) });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('loading provider-aws with its code cache');
  });

  it('trims the trailing newline that `echo` leaves in a stored value', async () => {
    const result = await get(await provision('sk-test-e2e-echoed\n'));
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-e2e-echoed', stderr: '' });
  });

  it('reads the key from the JSON field named by "field"', async () => {
    const secret = await provision(JSON.stringify({ token: 'sk-test-e2e-json-field', owner: 'alice' }));
    const result = await get(secret, { KEYBROKER_FIELD: 'token' });
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-e2e-json-field', stderr: '' });
  });

  it('reads api_key from a JSON value by default, with a future expires_at', async () => {
    const secret = await provision(JSON.stringify({ api_key: 'sk-test-e2e-json-default', expires_at: '2099-01-01T00:00:00Z' }));
    const result = await get(secret);
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-e2e-json-default', stderr: '' });
  });

  it('fails with exit 5 and says how to get a key when the secret does not exist', async () => {
    const line = expectFailure(await get('e2e/get-aws/never-written'), 5);
    expect(line).toContain('e2e/get-aws/never-written');
    expect(line).toMatch(/does not exist: ask your admin/);
  });

  it('fails with exit 5 in the wrong region (the secret lives in us-east-1)', async () => {
    const secret = await provision('sk-test-e2e-region');
    home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }, { region: 'eu-west-1' }));
    try {
      const line = expectFailure(await get(secret), 5);
      expect(line).toContain('eu-west-1');
    } finally {
      home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
    }
  });

  it('fails with exit 7 within the timeout when the endpoint is closed', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    home.writeConfig(awsConfig(endpoint, { cache: { backend: 'none' } }));
    try {
      const yardstick = await processStart();
      const result = await get('e2e/get-aws/1');
      const line = expectFailure(result, 7);
      expect(line).toMatch(/cannot reach AWS Secrets Manager .*ECONNREFUSED.*: check your network/);
      // A refused connection is retried with back-off only, never waited on until the timeout.
      await expectWithinBound('a get against a closed port', result.ms, RETRY_BACKOFF_MS, yardstick);
    } finally {
      home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
    }
  });

  it('fails with exit 7 within its timeout when the endpoint never answers', async () => {
    home.writeConfig(awsConfig(blackhole.url(), { cache: { backend: 'none' }, timeout: '1s' }));
    try {
      const yardstick = await processStart();
      const result = await get('e2e/get-aws/1');
      const line = expectFailure(result, 7);
      expect(line).toMatch(/did not answer GetSecretValue within 1000 ms/);
      await expectWithinBound('a get against a store that never answers', result.ms, storeCallCeilingMs(1_000), yardstick);
    } finally {
      home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
    }
  });

  it('fails with exit 3 naming the file and field when the config has an unknown field', async () => {
    const broken = makeTestHome({ profiles: { default: { store: { type: 'aws' }, secret: 'x', refreshAfter: '1m' } } });
    try {
      const result = await runBinary([], { env: broken.env() });
      const line = expectFailure(result, 3);
      expect(line).toContain(broken.configFile);
      expect(line).toContain('unknown field "refreshAfter"');
    } finally {
      broken.remove();
    }
  });

  // Each value Claude Code would reject: exit 8, the problem named, the value never echoed.
  const marker = 'sk-test-unusable';
  const unusable: [string, string, RegExp][] = [
    ['a line break', `${marker}-a\nb`, /line break at position 19/],
    ['a space', `${marker}-a b`, /space at position 19/],
    ['a tab', `${marker}-a\tb`, /tab at position 19/],
    ['a control character', `${marker}-a\u0007b`, /control character \(U\+0007\) at position 19/],
    ['a non-ASCII character', `${marker}-aé`, /non-ASCII character at position 19/],
    ['nothing but whitespace', ' \n\t \n', /it is empty/],
    ['an empty JSON field', JSON.stringify({ api_key: '' }), /it is empty/],
    ['over 16,384 characters', `${marker}-${'x'.repeat(16_384)}`, /16401 characters long, over the limit of 16384/],
    [
      'JSON without the field',
      JSON.stringify({ key: `${marker}-json`, note: 'no api_key' }),
      /has no string field "api_key" \(fields present: key, note\)/,
    ],
    [
      'a bad expires_at',
      JSON.stringify({ api_key: `${marker}-json`, expires_at: 'next tuesday' }),
      /"expires_at" .* is not an RFC 3339 time/,
    ],
    [
      'a past expires_at',
      JSON.stringify({ api_key: `${marker}-json`, expires_at: '2020-01-01T00:00:00Z' }),
      /expired at 2020-01-01T00:00:00.000Z/,
    ],
  ];
  for (const [problem, value, message] of unusable) {
    it(`refuses a stored value with ${problem}: exit 8, one line, the value never echoed`, async () => {
      const line = expectFailure(await get(await provision(value)), 8);
      expect(line).toMatch(message);
      expect(line).not.toContain(marker);
      expect(line).not.toContain('next tuesday');
    });
  }

  // Secrets Manager itself refuses an empty SecretString (min length 1), so "empty" reaches
  // keybroker as whitespace only, an empty JSON field (above), or a field of spaces.
  it('refuses a JSON field holding only spaces (empty once trimmed) with exit 8', async () => {
    const secret = await provision(JSON.stringify({ api_key: '   ' }));
    expect(expectFailure(await get(secret), 8)).toMatch(/it is empty/);
  });
});
