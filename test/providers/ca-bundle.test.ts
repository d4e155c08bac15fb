// A store's CA bundle is named by an absolute path: Claude Code runs keybroker from the project
// directory or from /, so a relative path would point somewhere else on every call.
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import type { StoreConfig } from '../../providers/provider.ts';
import { ConfigError } from '../../src/kernel/errors.ts';
import { openProvider } from '../../src/loader/open-store.ts';

const profile = (store: StoreConfig): Profile => ({
  name: 'ca',
  store,
  secret: 's',
  field: 'api_key',
  user: 'os',
  timeoutMs: 1_000,
  cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
});

describe.each([
  [{ type: 'azure', vaultUrl: 'https://corp.vault.azure.net' }, 'caFile'],
  [{ type: 'gcp', project: 'acme-llm-keys' }, 'caFile'],
  [{ type: 'vault', address: 'https://vault.corp.example' }, 'caCert'],
] as const)('%o', (store, field) => {
  it(`refuses a relative ${field}, naming the field`, async () => {
    const error = await openProvider(profile({ ...store, [field]: 'certs/corp-ca.pem' }), { env: {}, debug: () => {} }).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`store.${field}`);
    expect((error as ConfigError).message).toContain('absolute path');
  });
});
