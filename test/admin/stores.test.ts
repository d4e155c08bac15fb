// The admin commands on every registered store, through the Provider interface only: put is
// read back by the developer's get path, list finds it, rotate adds a version, revoke ends it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchFromStore } from '../../src/broker/broker.ts';
import type { Profile } from '../../src/config/config.ts';
import { SecretNotFound } from '../../src/kernel/errors.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { putKey } from '../../src/admin/put.ts';
import { listKeys } from '../../src/admin/list.ts';
import { rotateKeys } from '../../src/admin/rotate.ts';
import { revokeKey } from '../../src/admin/revoke.ts';
import { storeTypes } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import { harnesses } from '../providers/harnesses.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { inEnvironment, withEnvironment } from '../support/environment.ts';
import { adminDeps, adminProfile } from './support.ts';

for (const type of storeTypes) {
  const harness = harnesses[type];
  if (!harness) continue;
  describe(`admin commands on ${type}`, () => {
    let server: HarnessInstance;
    let profile: Profile;
    let admin: Provider;
    let developer: Provider;
    const as = async (env: NodeJS.ProcessEnv) =>
      inEnvironment(env, await withEnvironment(env, () => openProvider(profile, { env, debug: () => {} })));

    beforeAll(async () => {
      server = await harness.start();
      profile = adminProfile(server.storeConfig(server.port), { secret: server.developerSecret.replace(server.developerUser, '{user}') });
      admin = await as(server.adminEnv);
      developer = await as(server.developerEnv);
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('put → get reads it → list shows it → rotate adds a version → revoke refuses get', async () => {
      const user = server.developerUser;
      const { deps } = adminDeps(admin, profile);
      const put = await putKey(deps, { user, key: `sk-test-${type}-admin-1`, expiresAt: new Date('2031-01-01T00:00:00Z') });
      const read = () =>
        fetchFromStore({
          profile,
          openProvider: async () => developer,
          osUser: () => 'unused',
          now: () => Date.parse('2030-01-01T00:00:00Z'),
        });
      expect((await read()).key).toBe(`sk-test-${type}-admin-1`);
      expect((await putKey(deps, { user, key: `sk-test-${type}-admin-1`, expiresAt: new Date('2031-01-01T00:00:00Z') })).outcome).toBe(
        'unchanged',
      );

      const rows = await listKeys({ provider: admin, profile, now: Date.now }, { maxAgeMs: 86_400_000, expiringWithinMs: 86_400_000 });
      expect(rows.find((row) => row.user === user)).toMatchObject({ version: put.version, expires: '2031-01-01T00:00:00Z', enabled: true });

      const [rotated] = await rotateKeys(deps, { users: [user], key: `sk-test-${type}-admin-2`, graceMs: 0, dryRun: false }, 300_000);
      expect(rotated!.version).not.toBe(put.version);
      expect(await read()).toMatchObject({ key: `sk-test-${type}-admin-2`, version: rotated!.version });

      await revokeKey(deps, { user, purge: false });
      expect(await read().catch((caught: unknown) => caught)).toBeInstanceOf(SecretNotFound);
    });
  });
}
