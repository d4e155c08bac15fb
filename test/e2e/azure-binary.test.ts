// The built single executable serves a key from Azure Key Vault (the HTTPS fake, signed in with
// the fake `az`) through a real Secret Service keychain: the azure chunk works inside the SEA.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyVaultName } from '../../providers/azure.ts';
import { installFakeAzureCli, writeAzureLogin } from '../fakes/azure-cli.ts';
import { KEY_VAULT_RESOURCE, startKeyVaultFake, type KeyVaultFake } from '../fakes/azure-keyvault.ts';
import { cleanEnv, runBinary } from '../support/binary.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { expectWithinBound, processStart } from '../support/time-bounds.ts';

const TENANT = '3c4d5e6f-0000-4000-8000-0000000000e2';
const SECRET = 'claude-code/keys/alice@corp.com';

let vault: KeyVaultFake;
let keychain: SecretService;
let bin: string;

function writeConfig(file: string, cache: Record<string, unknown>): void {
  const store = { type: 'azure', vaultUrl: vault.url(), caFile: vault.caFile, disableChallengeResourceVerification: true };
  fs.writeFileSync(
    file,
    JSON.stringify({
      defaultProfile: 'default',
      profiles: { default: { store, secret: 'claude-code/keys/{user}', user: 'store', cache } },
    }),
  );
}

function envFor(azureConfigDir: string, configFile: string): NodeJS.ProcessEnv {
  return cleanEnv(
    { ...keychain.env, PATH: `${bin}:${process.env['PATH']}`, AZURE_CONFIG_DIR: azureConfigDir, KEYBROKER_CONFIG: configFile },
    keychain.home,
  );
}

beforeAll(async () => {
  [vault, keychain] = await Promise.all([startKeyVaultFake({ tenant: TENANT }), startSecretService()]);
  bin = path.join(keychain.home, 'bin');
  installFakeAzureCli(bin);
  vault.assignRole('oid-alice', 'Key Vault Secrets User', `/secrets/${keyVaultName(SECRET)}`);
  writeAzureLogin(path.join(keychain.home, '.azure'), {
    user: 'alice@corp.com',
    tenant: TENANT,
    tokens: { [TENANT]: { [KEY_VAULT_RESOURCE]: vault.mintToken({ tid: TENANT, oid: 'oid-alice', upn: 'alice@corp.com' }) } },
  });
});

afterAll(async () => {
  await vault?.stop();
  await keychain?.stop();
});

describe('keybroker get against Azure Key Vault, the built binary', () => {
  it('serves the key from the vault on a cold cache and keeps it in the keychain', async () => {
    vault.setSecret(keyVaultName(SECRET), JSON.stringify({ api_key: 'sk-test-azure-e2e-1', expires_at: '2099-01-01T00:00:00Z' }));
    const config = path.join(keychain.home, 'keychain.json');
    writeConfig(config, { backend: 'keychain' });
    const result = await runBinary(['get'], { env: envFor(path.join(keychain.home, '.azure'), config) });
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-azure-e2e-1', stderr: '' });
    const accounts = await keychain.accounts('keybroker');
    expect(accounts).toHaveLength(1);
    const cached = JSON.parse((await keychain.lookup({ service: 'keybroker', username: accounts[0]! }))!) as {
      key: string;
      secret: string;
    };
    expect(cached).toMatchObject({ key: 'sk-test-azure-e2e-1', secret: SECRET });
  });

  it('serves the cached key again without asking the vault or the Azure CLI', async () => {
    const config = path.join(keychain.home, 'keychain.json');
    const seen = vault.requests.length;
    // No az on PATH and no login: only the keychain can answer.
    const env = { ...envFor(path.join(keychain.home, 'nobody'), config), PATH: '/usr/bin:/bin' };
    const result = await runBinary(['get'], { env });
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-azure-e2e-1', stderr: '' });
    expect(vault.requests.length).toBe(seen);
  });

  it('fails with exit 4 and names `az login` when the developer is not signed in', async () => {
    const config = path.join(keychain.home, 'nocache.json');
    writeConfig(config, { backend: 'none' });
    const result = await runBinary(['get'], { env: envFor(path.join(keychain.home, 'nobody'), config) });
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 4, stdout: '' });
    expect(result.stderr).toMatch(/^keybroker: .*not signed in to Azure.*: run 'az login( --tenant \S+)?'\n$/);
  });

  it('fails with exit 5 naming "disabled" when the admin disabled the key', async () => {
    vault.setSecret(keyVaultName(SECRET), 'sk-test-azure-e2e-disabled', { enabled: false });
    const config = path.join(keychain.home, 'nocache.json');
    writeConfig(config, { backend: 'none' });
    const result = await runBinary(['get'], { env: envFor(path.join(keychain.home, '.azure'), config) });
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 5, stdout: '' });
    expect(result.stderr).toContain('is disabled (revoked)');
    vault.setSecret(keyVaultName(SECRET), JSON.stringify({ api_key: 'sk-test-azure-e2e-1' }));
  });

  it("serves a cold get (store read every time) in a cold get's worth of process starts, waiting on nothing else", async () => {
    const config = path.join(keychain.home, 'nocache.json');
    writeConfig(config, { backend: 'none' });
    const env = envFor(path.join(keychain.home, '.azure'), config);
    const yardstick = await processStart();
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const result = await runBinary(['get'], { env });
      expect(result).toMatchObject({ code: 0, stdout: 'sk-test-azure-e2e-1' });
      times.push(result.ms);
    }
    times.sort((a, b) => a - b);
    console.log(`azure cold get (fake vault, fake az), median of 5: ${Math.round(times[2]!)} ms`);
    // The fake `az` is a process start of its own (a Node script), and the SDK's token request one more round trip.
    await expectWithinBound('the median azure cold get', times[2]!, 0, yardstick);
  });
});
