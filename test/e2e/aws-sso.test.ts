// An AWS SSO profile whose session has expired (the most common morning failure): `get` says
// exactly which login to run, fast, without prompting and without touching the network.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runBinary } from '../support/binary.ts';

let home: string;
const cacheDir = () => path.join(home, '.aws', 'sso', 'cache');

beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-sso-'));
  fs.mkdirSync(cacheDir(), { recursive: true });
  fs.writeFileSync(
    path.join(home, '.aws', 'config'),
    [
      '[profile dev-sso]',
      'sso_session = corp',
      'sso_account_id = 123456789012',
      'sso_role_name = Developer',
      'region = us-east-1',
      '',
      '[sso-session corp]',
      'sso_start_url = https://corp.example.invalid/start',
      'sso_region = us-east-1',
      'sso_registration_scopes = sso:account:access',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    path.join(home, 'config.json'),
    JSON.stringify({
      profiles: {
        default: {
          store: { type: 'aws', region: 'us-east-1', profile: 'dev-sso' },
          secret: 'claude-code/keys/{user}',
          cache: { backend: 'none' },
        },
      },
    }),
  );
});
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

const env = () => ({
  PATH: '/nonexistent',
  HOME: home,
  KEYBROKER_CONFIG: path.join(home, 'config.json'),
  KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
});

it('an expired SSO session: exit 4 and the exact aws sso login command', async () => {
  // Where `aws sso login` leaves its token: ~/.aws/sso/cache/<sha1 of the session name>.json.
  const tokenFile = path.join(cacheDir(), `${createHash('sha1').update('corp').digest('hex')}.json`);
  fs.writeFileSync(
    tokenFile,
    JSON.stringify({
      startUrl: 'https://corp.example.invalid/start',
      region: 'us-east-1',
      accessToken: 'test-expired-token',
      expiresAt: '2026-01-01T00:00:00Z',
    }),
  );
  const result = await runBinary(['get'], { env: env() });
  expect(result.code).toBe(4);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain("run 'aws sso login --profile dev-sso'");
  expect(result.stderr).not.toContain('test-expired-token');
  fs.rmSync(tokenFile);
});

it('an SSO profile never logged in on this machine: the same command', async () => {
  const result = await runBinary(['get'], { env: env() });
  expect(result.code).toBe(4);
  expect(result.stderr).toContain("run 'aws sso login --profile dev-sso'");
});

it('runs with no node on PATH (the binary carries its own)', async () => {
  const result = await runBinary(['--version'], { env: { PATH: '/nonexistent' } });
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^keybroker \d+\.\d+\.\d+/);
});
