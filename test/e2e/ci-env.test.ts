// Issue 11, must-show 4: `keybroker env --format github` in a simulated GitHub Actions runner:
// the runner's OIDC token (a JWT file) logs in to Vault (the protocol-faithful fake), the key is
// masked first, the assignments go to $GITHUB_ENV, and the key appears nowhere else.
import fs from 'node:fs';
import path from 'node:path';
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY, runBinary } from '../support/binary.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault.ts';

const KEY = 'sk-test-ci-runner-key';
const GATEWAY = 'https://llm-gateway.example.com';
let vault: FakeVault;
let runner: TestHome;
let jwtFile: string;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
function jwt(claims: Record<string, unknown>): string {
  const encode = (part: unknown) => Buffer.from(JSON.stringify(part)).toString('base64url');
  const body = `${encode({ alg: 'ES256', typ: 'JWT' })}.${encode(claims)}`;
  return `${body}.${sign('sha256', Buffer.from(body), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

beforeAll(async () => {
  vault = await startFakeVault();
  vault.mountKv('secret', 2);
  vault.setPolicy('ci-claude', { 'secret/data/ci/claude/octo-org': ['read'] });
  vault.configureJwt(publicKey.export({ type: 'spki', format: 'pem' }).toString(), {
    'github-actions': { boundAudiences: ['https://vault.example'], userClaim: 'repository_owner', policies: ['ci-claude'] },
  });
  await vault.kvPut('ci/claude/octo-org', { api_key: KEY });
  runner = makeTestHome({
    profiles: {
      default: {
        store: {
          type: 'vault',
          address: vault.address,
          mount: 'secret',
          auth: { method: 'jwt', role: 'github-actions', jwtFile: '/placeholder' },
        },
        secret: 'ci/claude/{user}',
        user: 'store',
        gateway: GATEWAY,
        gatewayHeaders: { 'x-tenant': 'octo', 'x-route': 'ci' },
      },
    },
  });
  jwtFile = path.join(runner.dir, 'id-token.jwt');
  fs.writeFileSync(jwtFile, jwt({ aud: 'https://vault.example', repository_owner: 'octo-org', exp: Math.floor(Date.now() / 1000) + 300 }));
  const config = JSON.parse(fs.readFileSync(runner.configFile, 'utf8'));
  config.profiles.default.store.auth.jwtFile = jwtFile;
  runner.writeConfig(config);
});
afterAll(async () => {
  await vault?.stop();
  runner?.remove();
});

describe('keybroker env for CI runners', () => {
  it('github: ::add-mask:: first on stdout, the assignments in $GITHUB_ENV, the key nowhere else, nothing cached', async () => {
    const githubEnv = path.join(runner.dir, 'github_env');
    fs.writeFileSync(githubEnv, 'EARLIER=kept\n');
    const before = runner.files();
    const result = await runBinary(['env', '--format', 'github'], { env: runner.env({ GITHUB_ENV: githubEnv, GITHUB_ACTIONS: 'true' }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`::add-mask::${KEY}\n`);
    const written = fs.readFileSync(githubEnv, 'utf8');
    const delimiter = /ANTHROPIC_CUSTOM_HEADERS<<(\S+)\n/.exec(written)?.[1];
    expect(delimiter).toMatch(/^keybroker_[0-9a-f-]{36}$/);
    expect(written).toBe(
      `EARLIER=kept\nANTHROPIC_BASE_URL=${GATEWAY}\nANTHROPIC_API_KEY=${KEY}\nANTHROPIC_CUSTOM_HEADERS<<${delimiter}\nx-tenant: octo\nx-route: ci\n${delimiter}\n`,
    );
    expect(written.split('\n').filter((line) => line.includes(KEY))).toEqual([`ANTHROPIC_API_KEY=${KEY}`]);
    expect(result.stderr).not.toContain(KEY);
    expect(result.stderr).toContain('ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY, ANTHROPIC_CUSTOM_HEADERS');
    // No cache, lock or state file: only the CI's own file changed.
    expect(runner.files().sort()).toEqual(before.sort());
    for (const file of runner.files().filter((name) => name !== 'github_env')) {
      expect(fs.readFileSync(path.join(runner.dir, file), 'utf8')).not.toContain(KEY);
    }
    // The runner logged in with its JWT, not with a stored token.
    expect(vault.requests.some((request) => request.path.includes('auth/jwt/login'))).toBe(true);
  });

  it('github outside a runner (no GITHUB_ENV) is a usage error that prints no key', async () => {
    const result = await runBinary(['env', '--format', 'github'], { env: runner.env() });
    expect(result).toMatchObject({ code: 2, stdout: '' });
    expect(result.stderr).toContain('GITHUB_ENV');
  });

  it('shell and gitlab print exports to eval; gitlab refuses while CI_DEBUG_TRACE would echo them', async () => {
    const shell = await runBinary(['env', '--format', 'shell', '--key-var', 'ANTHROPIC_AUTH_TOKEN'], { env: runner.env() });
    expect(shell).toMatchObject({ code: 0, stderr: '' });
    expect(shell.stdout).toBe(
      `export ANTHROPIC_BASE_URL='${GATEWAY}'\nexport ANTHROPIC_AUTH_TOKEN='${KEY}'\nexport ANTHROPIC_CUSTOM_HEADERS='x-tenant: octo\nx-route: ci'\n`,
    );
    const gitlab = await runBinary(['env', '--format', 'gitlab'], { env: runner.env({ GITLAB_CI: 'true' }) });
    expect(gitlab).toMatchObject({ code: 0, stdout: shell.stdout.replace('ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_API_KEY') });
    const traced = await runBinary(['env', '--format', 'gitlab'], { env: runner.env({ GITLAB_CI: 'true', CI_DEBUG_TRACE: 'true' }) });
    expect(traced).toMatchObject({ code: 2, stdout: '' });
    expect(traced.stderr).not.toContain(KEY);
  });

  it.each([
    ['CI_DEBUG_TRACE', '1'],
    ['CI_DEBUG_TRACE', 't'],
    ['CI_DEBUG_TRACE', 'TRUE'],
    ['CI_DEBUG_TRACE', 'True'],
    ['CI_DEBUG_SERVICES', 'true'],
    ['CI_DEBUG_SERVICES', 'T'],
  ])(
    "gitlab with %s=%s (true to Go's ParseBool, as GitLab reads it): exit 2, no key, and the store is never asked",
    async (name, value) => {
      const asked = vault.requests.length;
      const traced = await runBinary(['env', '--format', 'gitlab'], { env: runner.env({ GITLAB_CI: 'true', [name]: value }) });
      expect(traced).toMatchObject({ code: 2, stdout: '' });
      expect(traced.stderr).toContain(`${name}=${value}`);
      expect(traced.stderr).not.toContain(KEY);
      expect(vault.requests.length).toBe(asked);
    },
  );

  it('gitlab with tracing off in words GitLab reads as false (0, false, yes is not a bool): the exports are printed', async () => {
    for (const value of ['0', 'false', 'FALSE', 'yes', '']) {
      const result = await runBinary(['env', '--format', 'gitlab'], { env: runner.env({ GITLAB_CI: 'true', CI_DEBUG_TRACE: value }) });
      expect(result.code, `CI_DEBUG_TRACE=${value}: ${result.stderr}`).toBe(0);
      expect(result.stdout).toContain(`ANTHROPIC_API_KEY='${KEY}'`);
    }
  });

  it('github with RUNNER_DEBUG and ACTIONS_STEP_DEBUG on and a debug trace: in the merged log the mask comes before any line with the key, and is the only one', async () => {
    const githubEnv = path.join(runner.dir, 'github_env_debug');
    fs.writeFileSync(githubEnv, '');
    // The runner reads stdout and stderr into one log: merge them, in the order they were written.
    const result = await runBinary(['-c', `exec '${BINARY}' env --format github --verbose 2>&1`], {
      command: 'sh',
      env: runner.env({
        GITHUB_ENV: githubEnv,
        GITHUB_ACTIONS: 'true',
        RUNNER_DEBUG: '1',
        ACTIONS_STEP_DEBUG: 'true',
        KEYBROKER_DEBUG: '1',
      }),
    });
    expect(result.code, result.stdout).toBe(0);
    const log = result.stdout.split('\n');
    expect(log.some((line) => line.startsWith('keybroker: debug:'))).toBe(true);
    expect(log.filter((line) => line.includes(KEY))).toEqual([`::add-mask::${KEY}`]);
    expect(log.findIndex((line) => line.includes('::add-mask::'))).toBeLessThan(
      log.findIndex((line) => line.includes('for the rest of the job')),
    );
    expect(fs.readFileSync(githubEnv, 'utf8')).toContain(`ANTHROPIC_API_KEY=${KEY}\n`);
  });
});
