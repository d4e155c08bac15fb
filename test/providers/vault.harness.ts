// HashiCorp Vault: the protocol-faithful fake (no Vault server is obtainable here), a developer
// logged in the way `vault login -method=oidc` leaves them (a token in VAULT_TOKEN), an admin with
// a scoped policy, seeded through Vault's HTTP API as `vault kv put` does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeVault } from '../fakes/vault.ts';
import type { ProviderHarness } from './contract.ts';

export const vaultHarness: ProviderHarness = {
  type: 'vault',
  async start() {
    const vault = await startFakeVault();
    vault.mountKv('secret', 2);
    // Vault checks the policy before existence: a name outside it is "permission denied", never
    // "not found". The glob lets the contract's missing name (alice-missing) reach the 404.
    vault.setPolicy('claude-code-alice', { 'secret/data/claude-code/keys/alice*': ['read'] });
    vault.setPolicy('claude-code-admin', {
      'secret/data/claude-code/*': ['create', 'read', 'update', 'delete'],
      'secret/metadata/claude-code/*': ['create', 'read', 'update', 'delete', 'list'],
    });
    const alice = vault.createToken({ alias: 'alice', policies: ['claude-code-alice'], authPath: 'auth/oidc/oidc/callback' });
    const admin = vault.createToken({ alias: 'keybroker-admin', policies: ['claude-code-admin'], authPath: 'auth/oidc/oidc/callback' });
    const revoked = vault.createToken({ alias: 'alice', policies: ['claude-code-alice'], authPath: 'auth/oidc/oidc/callback' });
    vault.revokeToken(revoked);
    // No ~/.vault-token anywhere: only the variable counts (another test may replace HOME).
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-vault-home-'));
    const base = { PATH: process.env['PATH'], HOME: home };
    return {
      port: vault.port,
      storeConfig: (port) => ({ type: 'vault', address: `http://127.0.0.1:${port}` }),
      developerEnv: { ...base, VAULT_TOKEN: alice },
      unauthenticatedEnv: { ...base, VAULT_TOKEN: revoked },
      adminEnv: { ...base, VAULT_TOKEN: admin },
      developerUser: 'alice',
      developerSecret: 'claude-code/keys/alice',
      forbidden: { env: { ...base, VAULT_TOKEN: alice }, secret: 'claude-code/keys/bob' },
      loginFix: /vault login/,
      async seed(name, value) {
        // `vault kv put secret/<name> api_key=<value>` (a JSON value's fields as they are).
        let data: unknown;
        try {
          data = JSON.parse(value);
        } catch {
          data = { api_key: value };
        }
        await vault.kvPut(name, data as Record<string, unknown>);
      },
      throttleReads(count) {
        const before = vault.throttled();
        // A rate limit quota on the KV mount: the reads of secrets, not the token's lookup-self.
        vault.throttle(count, { pathPrefix: 'secret/data/', retryAfterSeconds: 1 });
        return { leastWaitMs: 1_000, given: () => vault.throttled() - before, stop: () => vault.throttle(0) };
      },
      async stop() {
        await vault.stop();
        fs.rmSync(home, { recursive: true, force: true });
      },
    };
  },
};
