// The built single executable serves a key from Vault (the protocol-faithful fake) end to end:
// the provider chunk runs inside the SEA, the developer is who ~/.vault-token says, and the key
// lands in a real Secret Service keychain (checked with secret-tool).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBinary } from '../support/binary.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { expectWithinBound, processStart } from '../support/time-bounds.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault.ts';

let vault: FakeVault;
let keyring: SecretService;
let configFile: string;

const env = (extra: NodeJS.ProcessEnv = {}) => cleanEnv({ ...keyring.env, KEYBROKER_CONFIG: configFile, ...extra }, keyring.home);

beforeAll(async () => {
  [vault, keyring] = await Promise.all([startFakeVault(), startSecretService()]);
  vault.mountKv('secret', 2);
  vault.setPolicy('claude-code-alice', { 'secret/data/claude-code/keys/alice': ['read'] });
  // What `vault login -method=oidc` leaves behind: the token in ~/.vault-token.
  const token = vault.createToken({ alias: 'alice', policies: ['claude-code-alice'], authPath: 'auth/oidc/oidc/callback' });
  fs.writeFileSync(path.join(keyring.home, '.vault-token'), token, { mode: 0o600 });
  configFile = path.join(keyring.home, 'keybroker.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      profiles: {
        default: {
          store: { type: 'vault', address: vault.address, mount: 'secret', auth: { method: 'oidc', role: 'developer' } },
          secret: 'claude-code/keys/{user}',
          user: 'store',
          cache: { backend: 'keychain' },
        },
      },
    }),
  );
  await vault.kvPut('claude-code/keys/alice', { api_key: 'sk-test-vault-e2e-first', team: 'ml' });
});

afterAll(async () => {
  await keyring?.stop();
  await vault?.stop();
});

describe('keybroker get against Vault, the built binary', () => {
  it("prints the developer's key from Vault and keeps it in the keychain, then serves it without asking Vault", async () => {
    const cold = await runBinary([], { env: env() });
    expect(cold).toMatchObject({ code: 0, stdout: 'sk-test-vault-e2e-first', stderr: '' });

    const accounts = await keyring.accounts('keybroker');
    expect(accounts).toHaveLength(1);
    const cached = JSON.parse((await keyring.lookup({ service: 'keybroker', username: accounts[0]! }))!);
    expect(cached).toMatchObject({ key: 'sk-test-vault-e2e-first', version: '1', secret: 'claude-code/keys/alice' });

    const asked = vault.requests.length;
    const warm = await runBinary([], { env: env() });
    expect(warm).toMatchObject({ code: 0, stdout: 'sk-test-vault-e2e-first', stderr: '' });
    expect(vault.requests.length).toBe(asked);
  });

  it('fails with exit 4 and the vault login command when there is no Vault token', async () => {
    const result = await runBinary([], { env: env({ HOME: path.join(keyring.home, 'elsewhere'), KEYBROKER_CACHE_BACKEND: 'none' }) });
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(
      /^keybroker: .*no token in VAULT_TOKEN or ~\/\.vault-token: run 'vault login -address=http:\/\/127\.0\.0\.1:\d+ -method=oidc role=developer'\n$/,
    );
  });

  it("reads a new version on a cold start with no cache, in a cold get's worth of process starts", async () => {
    await vault.kvPut('claude-code/keys/alice', { api_key: 'sk-test-vault-e2e-second' });
    const yardstick = await processStart();
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const result = await runBinary([], { env: env({ KEYBROKER_CACHE_BACKEND: 'none' }) });
      expect(result).toMatchObject({ code: 0, stdout: 'sk-test-vault-e2e-second', stderr: '' });
      times.push(result.ms);
    }
    await expectWithinBound('the median vault cold get', times.sort((a, b) => a - b)[2]!, 0, yardstick);
  });
});
