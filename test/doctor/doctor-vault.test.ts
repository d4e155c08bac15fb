// The store checks go through the Provider interface only: the same doctor against Vault (the
// protocol-faithful fake), where {user} comes from the store identity.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { cleanEnv, runBinary } from '../support/binary.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault.ts';
import { check, type Report } from './setup.ts';
import { fingerprint } from '../../src/secret/value.ts';

const KEY = 'sk-test-doctor-vault-5e6f7a8b9c0d';
let vault: FakeVault;
let home: string;

beforeAll(async () => {
  vault = await startFakeVault();
  vault.mountKv('secret', 2);
  vault.setPolicy('claude-code-alice', { 'secret/data/claude-code/keys/alice': ['read'] });
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-doctor-vault-'));
  const configFile = path.join(home, '.config', 'keybroker', 'config.json');
  fs.mkdirSync(path.dirname(configFile), { recursive: true });
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      profiles: {
        default: {
          store: { type: 'vault', address: vault.address, mount: 'secret', auth: { method: 'oidc', role: 'developer' } },
          secret: 'claude-code/keys/{user}',
          user: 'store',
          cache: { backend: 'file' },
        },
      },
    }),
  );
  await vault.kvPut('claude-code/keys/alice', { api_key: KEY, expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() });
});
afterAll(async () => {
  await vault?.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

async function doctor(): Promise<{ report: Report; output: string; code: number | null }> {
  const result = await runBinary(['doctor', '--json'], {
    env: cleanEnv({ KEYBROKER_CLAUDE_MANAGED_SETTINGS: path.join(home, 'none.json') }, home),
  });
  return { report: JSON.parse(result.stdout) as Report, output: result.stdout + result.stderr, code: result.code };
}

test('logged in to Vault: who you are, the name {user} resolves to, the key and its expiry', async () => {
  fs.writeFileSync(
    path.join(home, '.vault-token'),
    vault.createToken({ alias: 'alice', policies: ['claude-code-alice'], authPath: 'auth/oidc/oidc/callback' }),
    { mode: 0o600 },
  );
  const { report, output } = await doctor();
  expect(check(report, 'store.identity').verdict).toBe('OK');
  expect(check(report, 'store.identity').finding).toMatch(/Vault/);
  expect(check(report, 'store.secret-name').finding).toBe(
    '"claude-code/keys/alice" (template "claude-code/keys/{user}", {user} = "alice" from the store identity)',
  );
  expect(check(report, 'store.value').finding).toContain(fingerprint(KEY));
  const expiry = check(report, 'store.expiry');
  expect(expiry.verdict).toBe('WARN');
  expect(expiry.finding).toMatch(/expires at .*, in 2d23h|in 3d/);
  expect(output).not.toContain(KEY);
});

test('not logged in to Vault: FAIL with the login to run, and the name cannot be resolved', async () => {
  fs.rmSync(path.join(home, '.vault-token'), { force: true });
  const { report, code } = await doctor();
  const identity = check(report, 'store.identity');
  expect(identity.verdict).toBe('FAIL');
  expect(identity.fix).toMatch(/login/);
  expect(check(report, 'store.secret-name').verdict).toBe('SKIP');
  expect(code).toBe(4);
});
