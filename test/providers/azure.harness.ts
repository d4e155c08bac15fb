// Azure Key Vault: the HTTPS fake (challenge auth, RBAC per secret, test CA), with each identity
// signed in through a fake `az` on PATH, which is what AzureCliCredential runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { keyVaultName } from '../../providers/azure.ts';
import { installFakeAzureCli, writeAzureLogin } from '../fakes/azure-cli.ts';
import { KEY_VAULT_RESOURCE, startKeyVaultFake } from '../fakes/azure-keyvault.ts';
import type { ProviderHarness } from './contract.ts';

const AZURE_TEST_TENANT = '72f988bf-0000-4000-8000-00000000c0de';

export const azureHarness: ProviderHarness = {
  type: 'azure',
  async start() {
    // Page size 2 so that listing goes through the service's nextLink paging.
    const vault = await startKeyVaultFake({ tenant: AZURE_TEST_TENANT, pageSize: 2 });
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-azure-home-'));
    const bin = path.join(home, 'bin');
    installFakeAzureCli(bin);
    const base = { PATH: `${bin}:${process.env['PATH']}`, HOME: home };
    const signIn = (who: string, upn: string, oid: string) => {
      const configDir = path.join(home, who, '.azure');
      const token = vault.mintToken({ tid: AZURE_TEST_TENANT, oid, upn });
      writeAzureLogin(configDir, {
        user: upn,
        tenant: AZURE_TEST_TENANT,
        tokens: { [AZURE_TEST_TENANT]: { [KEY_VAULT_RESOURCE]: token } },
      });
      return { ...base, AZURE_CONFIG_DIR: configDir };
    };
    const aliceSecret = 'claude-code/keys/alice@corp.com';
    const bobSecret = 'claude-code/keys/bob@corp.com';
    // A team vault: alice reads secrets vault-wide (a missing one is then a 404; with a role on her
    // secret alone, Key Vault answers 403 for any other name). Mallory is signed in with no role.
    vault.assignRole('oid-alice', 'Key Vault Secrets User', '/');
    vault.assignRole('oid-admin', 'Key Vault Secrets Officer', '/');
    vault.setSecret(keyVaultName(bobSecret), 'sk-test-azure-bob');
    const developerEnv = signIn('alice', 'Alice@corp.com', 'oid-alice');
    const malloryEnv = signIn('mallory', 'mallory@corp.com', 'oid-mallory');
    const adminEnv = signIn('admin', 'kb-admin@corp.com', 'oid-admin');
    return {
      port: vault.port,
      storeConfig: (port) => ({
        type: 'azure',
        vaultUrl: vault.url(port),
        caFile: vault.caFile,
        disableChallengeResourceVerification: true,
      }),
      developerEnv,
      unauthenticatedEnv: { ...base, AZURE_CONFIG_DIR: path.join(home, 'nobody', '.azure') },
      adminEnv,
      developerUser: 'alice@corp.com',
      developerSecret: aliceSecret,
      forbidden: { env: malloryEnv, secret: bobSecret },
      loginFix: /az login/,
      async seed(name, value) {
        vault.setSecret(keyVaultName(name), value);
      },
      throttleReads(count) {
        const before = vault.throttledReads();
        vault.throttleReads(count, 1);
        return { leastWaitMs: 1_000, given: () => vault.throttledReads() - before, stop: () => vault.throttleReads(0) };
      },
      async stop() {
        await vault.stop();
        fs.rmSync(home, { recursive: true, force: true });
      },
    };
  },
};
