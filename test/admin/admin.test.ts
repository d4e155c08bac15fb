// put, import, revoke and list against a real moto store with IAM, the real `aws` CLI reading
// back what the admin wrote, and the developer's `get` path reading it as the developer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchFromStore } from '../../src/broker/broker.ts';
import type { Profile } from '../../src/config/config.ts';
import { AccessDenied, SecretNotFound, StoreUnreachable, UsageError, UnusableKey } from '../../src/kernel/errors.ts';
import { putKey } from '../../src/admin/put.ts';
import { importKeys, parseImport } from '../../src/admin/import.ts';
import { revokeKey } from '../../src/admin/revoke.ts';
import { listKeys, renderTable } from '../../src/admin/list.ts';
import { looksLikeKey, readKeyInput, refuseKeysInArguments, secretNameFor } from '../../src/admin/common.ts';
import type { Provider } from '../../providers/provider.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { adminDeps, adminProfile, providerAs, startAwsStore } from './support.ts';
import { awsCli } from './aws-cli.ts';

const DAY = 86_400_000;
const versionsOf = async (store: HarnessInstance, name: string) =>
  ((await awsCli(store, ['secretsmanager', 'list-secret-version-ids', '--secret-id', name])) as { Versions: unknown[] }).Versions.length;

describe('admin put, import, revoke, list on AWS', () => {
  let store: HarnessInstance;
  let profile: Profile;
  let admin: Provider;
  let developer: Provider;

  beforeAll(async () => {
    store = await startAwsStore();
    profile = adminProfile(store.storeConfig(store.port));
    admin = await providerAs(profile, store.adminEnv);
    developer = await providerAs(profile, store.developerEnv);
  });
  afterAll(async () => {
    await store?.stop();
  });

  describe('put', () => {
    it("writes JSON with the key and metadata, labelled; the aws CLI and the developer's get read it back", async () => {
      const { deps, audit, output } = adminDeps(admin, profile, { now: () => Date.parse('2026-11-27T10:00:00Z') });
      const result = await putKey(deps, { user: 'alice', key: 'sk-test-put-alice-1', expiresAt: new Date('2027-01-31T00:00:00Z') });
      expect(result.outcome).toBe('created');

      const read = (await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/alice'])) as {
        SecretString: string;
        VersionId: string;
      };
      expect(JSON.parse(read.SecretString)).toEqual({
        api_key: 'sk-test-put-alice-1',
        expires_at: '2027-01-31T00:00:00Z',
        created_at: '2026-11-27T10:00:00Z',
        created_by: 'arn:aws:iam::123456789012:user/keybroker-admin',
      });
      expect(read.VersionId).toBe(result.version);
      const described = (await awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', 'claude-code/keys/alice'])) as {
        Tags: { Key: string; Value: string }[];
      };
      expect(Object.fromEntries(described.Tags.map((tag) => [tag.Key, tag.Value]))).toMatchObject({
        'managed-by': 'keybroker',
        'keybroker-user': 'alice',
        'keybroker-expires': String(Date.parse('2027-01-31T00:00:00Z') / 1000),
      });

      const entry = await fetchFromStore({
        profile,
        openProvider: async () => developer,
        osUser: () => 'unused',
        now: () => Date.parse('2026-12-01T00:00:00Z'),
      });
      expect(entry.key).toBe('sk-test-put-alice-1');
      expect(entry.expiresAt).toBe(Date.parse('2027-01-31T00:00:00Z'));
      expect(audit).toEqual([
        { action: 'put', user: 'alice', secret: 'claude-code/keys/alice', outcome: 'intent: store write' },
        { action: 'put', user: 'alice', secret: 'claude-code/keys/alice', version: result.version, outcome: 'created' },
      ]);
      expect(output.out.join('') + JSON.stringify(audit)).not.toContain('sk-test-put-alice-1');
    });

    it('adds a version for a new key, and none for the same key again', async () => {
      const { deps } = adminDeps(admin, profile);
      await putKey(deps, { user: 'dora', key: 'sk-test-put-dora-1' });
      const second = await putKey(deps, { user: 'dora', key: 'sk-test-put-dora-2' });
      expect(second.outcome).toBe('updated');
      expect(await versionsOf(store, 'claude-code/keys/dora')).toBe(2);
      const again = await putKey(deps, { user: 'dora', key: 'sk-test-put-dora-2' });
      expect(again).toMatchObject({ outcome: 'unchanged', version: second.version });
      expect(await versionsOf(store, 'claude-code/keys/dora')).toBe(2);
    });

    it('writes the bare key when the profile does not name a field', async () => {
      const { deps } = adminDeps(admin, profile, { valueFormat: 'raw' });
      await putKey(deps, { user: 'raw-user', key: 'sk-test-put-raw' });
      const read = (await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/raw-user'])) as {
        SecretString: string;
      };
      expect(read.SecretString).toBe('sk-test-put-raw');
    });

    it('refuses user names that would leave the template, before touching the store', async () => {
      const { deps } = adminDeps({ ...admin, write: async () => expect.unreachable('no write') }, profile);
      for (const user of ['../bob', 'a/b', '', 'a\\b', 'eve\n']) {
        const error = await putKey(deps, { user, key: 'sk-test-put-escape' }).catch((caught: unknown) => caught);
        expect(error, JSON.stringify(user)).toBeInstanceOf(UsageError);
      }
      expect(secretNameFor(profile.secret, 'alice')).toBe('claude-code/keys/alice');
    });

    it("refuses a key Claude Code would reject, with get's rules, never echoing it", () => {
      expect(readKeyInput('  sk-test-trailing-newline\n', 'stdin')).toBe('sk-test-trailing-newline');
      for (const [input, problem] of [
        ['sk-test bad', 'a space at position 8'],
        ['', 'it is empty'],
        ['sk-test-ünïcode', 'non-ASCII'],
        ['sk-test\nsecond-line', 'line break'],
      ] as const) {
        const error = (() => {
          try {
            return readKeyInput(input, 'stdin');
          } catch (caught) {
            return caught;
          }
        })();
        expect(error).toBeInstanceOf(UnusableKey);
        expect((error as UnusableKey).line()).toContain(problem);
        if (input) expect((error as UnusableKey).line()).not.toContain(input);
      }
    });

    it('refuses a key-looking command-line argument', () => {
      expect(() => refuseKeysInArguments(['--user', 'alice', 'sk-test-abcdef123456'])).toThrow(UsageError);
      expect(() => refuseKeysInArguments(['Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA'])).toThrow(/looks like a key/);
      expect(looksLikeKey('0123456789abcdef0123456789abcdef')).toBe(true);
      const harmless = [
        'alice',
        'alice.smith@example.com',
        'keys.csv',
        '/tmp/keys.json',
        '24h',
        '2027-01-31T00:00:00Z',
        'claude-code-keys',
        'botocore-session-1234567890',
        '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
      ];
      for (const argument of harmless) expect(looksLikeKey(argument), argument).toBe(false);
    });

    it('reports a store that denies the write as AccessDenied, and writes nothing', async () => {
      const { deps } = adminDeps(developer, profile);
      const error = await putKey(deps, { user: 'zed', key: 'sk-test-put-denied' }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AccessDenied);
      expect((error as AccessDenied).line()).not.toContain('sk-test-put-denied');
      await expect(awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', 'claude-code/keys/zed'])).rejects.toThrow(
        /ResourceNotFound/,
      );
    });
  });

  describe('import', () => {
    const csv = (rows: string[]) => `${['user,key,expires_at', ...rows].join('\n')}\n`;

    it('reports every malformed row with its line number and writes nothing', async () => {
      const { deps, output } = adminDeps(admin, profile);
      const text = csv([
        'ivy,sk-test-import-ivy,',
        'jack,sk-test-import jack,',
        '../bob,sk-test-import-bob,',
        'kim,sk-test-import-kim,next tuesday',
        'lee,sk-test-import-lee,2027-01-01T00:00:00Z,extra',
        'ivy,sk-test-import-ivy-2,',
        'a/b,sk-test-import-ab,',
        ',sk-test-import-empty,',
      ]);
      const error = await importKeys(deps, text, 'csv', 'keys.csv').catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).message).toBe('keys.csv has 7 problems (listed above); nothing was written');
      expect(output.err).toEqual([
        'keybroker: keys.csv: line 3: the key for jack is not usable: it contains a space at position 15',
        'keybroker: keys.csv: line 4: the user name "../bob" cannot be used: it contains a path separator',
        'keybroker: keys.csv: line 5: expires_at "next tuesday" is not an RFC 3339 time such as 2026-12-31T23:59:59Z',
        'keybroker: keys.csv: line 6: expected user,key[,expires_at] but found 4 fields',
        'keybroker: keys.csv: line 7: ivy is already on line 2; one key per developer',
        'keybroker: keys.csv: line 8: the user name "a/b" cannot be used: it contains a path separator',
        'keybroker: keys.csv: line 9: the user name "" cannot be used: it is empty',
      ]);
      expect(output.err.join('\n')).not.toContain('sk-test-import');
      const listed = (await awsCli(store, ['secretsmanager', 'list-secrets', '--filters', 'Key=name,Values=claude-code/keys/ivy'])) as {
        SecretList: unknown[];
      };
      expect(listed.SecretList).toEqual([]);
    });

    it('reports a CSV that does not parse with the line it broke on', () => {
      const { problems } = parseImport('user,key\nmia,"sk-test-import-mia\nnoah,sk-test-import-noah\n', 'csv');
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^line \d+: not valid CSV/);
      expect(problems[0]).not.toContain('sk-test-import');
    });

    it('reads the JSON form, naming entries', () => {
      const { rows, problems } = parseImport(
        JSON.stringify([
          { user: 'olga', key: 'sk-test-import-olga', expires_at: '2027-01-01T00:00:00Z' },
          { user: 'olga', key: 'sk-test-import-olga-2' },
          { key: 'sk-test-import-x' },
        ]),
        'json',
      );
      expect(rows).toEqual([]);
      expect(problems).toEqual([
        'entry 2: olga is already on entry 1; one key per developer',
        'entry 3: the user name "" cannot be used: it is empty',
      ]);
    });

    it('an interrupted import says exactly who was written; the re-run writes the rest and no new versions for the others', async () => {
      const users = ['pam', 'quinn', 'rae', 'sam'];
      const text = csv(users.map((user) => `${user},sk-test-import-${user},`));
      let writes = 0;
      const flaky: Provider = {
        ...admin,
        // rae's write and the same write sent again get no answer, and were not applied.
        write: async (...args) => {
          if (args[0].endsWith('/rae') && ++writes <= 2)
            throw new StoreUnreachable('AWS Secrets Manager did not answer PutSecretValue within 5000 ms', 'check your network');
          return admin.write(...args);
        },
      };
      // One at a time, so that the third write is rae's.
      const first = adminDeps(flaky, profile, { bulk: { ceiling: 1 } });
      const error = await importKeys(first.deps, text, 'csv', 'keys.csv').catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(StoreUnreachable);
      expect(first.output.err).toEqual([
        'keybroker: import stopped at rae (line 4): the store did not confirm the write of "claude-code/keys/rae" (AWS Secrets Manager did not answer PutSecretValue within 5000 ms: check your network), nor the same write sent again; it may still be applied: run the same command again once the store answers (a rotation with --audit-log finishes it: admin rotate --resume)',
        'keybroker: written or already current (2): pam, quinn',
        'keybroker: not written (2): rae, sam',
        'keybroker: fix the cause and run the same import again: keys already current are not written twice',
      ]);
      await expect(awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', 'claude-code/keys/rae'])).rejects.toThrow(
        /ResourceNotFound/,
      );

      const again = adminDeps(admin, profile);
      const summary = await importKeys(again.deps, text, 'csv', 'keys.csv');
      expect(summary.unchanged.map((result) => result.user)).toEqual(['pam', 'quinn']);
      expect(summary.written.map((result) => result.user)).toEqual(['rae', 'sam']);
      expect(again.output.out.join('')).toBe('imported 4 keys from keys.csv: 2 created, 0 new versions, 2 unchanged\n');
      for (const user of users) expect(await versionsOf(store, `claude-code/keys/${user}`)).toBe(1);
      // One audit line per row; rows run concurrently, so lines come in the order the writes finished.
      expect(again.audit.map((entry) => `${entry.user}:${entry.outcome}`).sort()).toEqual([
        'pam:unchanged',
        'quinn:unchanged',
        'rae:created',
        'rae:intent: store write',
        'sam:created',
        'sam:intent: store write',
      ]);
    });

    it('shows progress on a terminal', async () => {
      const { deps, output } = adminDeps(admin, profile, { isTTY: true });
      await importKeys(deps, csv(['tara,sk-test-import-tara,', 'uma,sk-test-import-uma,']), 'csv', 'keys.csv');
      expect(output.err[0]).toMatch(/^import \[#{12}-{12}\] 1\/2 {2}\d+\.\d\/s {2}ETA \d+s {2}\d at a time {2}no throttling$/);
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the progress line moves the cursor with ANSI escapes
      expect(output.err.at(-1)).toMatch(/^\x1b\[1A\x1b\[2Kimport \[#{24}\] 2\/2 {2}\d+\.\d\/s {2}done {2}\d at a time {2}no throttling$/);
    });
  });

  describe('revoke', () => {
    it('disables softly: get is refused, the aws CLI sees it scheduled for deletion, a new put brings it back', async () => {
      const { deps, audit } = adminDeps(admin, profile);
      await putKey(deps, { user: 'vic', key: 'sk-test-revoke-vic' });
      await revokeKey(deps, { user: 'vic', purge: false });
      const described = (await awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', 'claude-code/keys/vic'])) as {
        DeletedDate?: unknown;
      };
      expect(described.DeletedDate).toBeDefined();
      const vicProfile = { ...profile, secret: 'claude-code/keys/vic' };
      const error = await fetchFromStore({
        profile: vicProfile,
        openProvider: async () => developer,
        osUser: () => 'unused',
        now: Date.now,
      }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(SecretNotFound);
      expect(audit.at(-1)).toMatchObject({ action: 'revoke', user: 'vic', outcome: 'disabled (recoverable)' });

      await putKey(deps, { user: 'vic', key: 'sk-test-revoke-vic-2' });
      const entry = await fetchFromStore({
        profile: vicProfile,
        openProvider: async () => developer,
        osUser: () => 'unused',
        now: Date.now,
      });
      expect(entry.key).toBe('sk-test-revoke-vic-2');
    });

    it('purges: the aws CLI no longer finds it', async () => {
      const { deps, audit } = adminDeps(admin, profile);
      await putKey(deps, { user: 'wes', key: 'sk-test-revoke-wes' });
      await revokeKey(deps, { user: 'wes', purge: true });
      await expect(awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', 'claude-code/keys/wes'])).rejects.toThrow(
        /ResourceNotFound/,
      );
      expect(audit.at(-1)).toMatchObject({ action: 'purge', user: 'wes', outcome: 'deleted for good' });
    });
  });

  describe('list', () => {
    it('one row per developer, sorted, with version, dates, age and flags, never a key', async () => {
      const listProfile = { ...profile, secret: 'team-list/{user}' };
      const written = (now: number) => adminDeps(admin, listProfile, { now: () => now });
      const start = Date.parse('2026-01-01T00:00:00Z');
      await putKey(written(start).deps, { user: 'zoe', key: 'sk-test-list-zoe' });
      await putKey(written(start + 100 * DAY).deps, { user: 'amy', key: 'sk-test-list-amy', expiresAt: new Date(start + 110 * DAY) });
      await putKey(written(start + 100 * DAY).deps, { user: 'ben', key: 'sk-test-list-ben', expiresAt: new Date(start + 99 * DAY) });
      await putKey(written(start + 100 * DAY).deps, { user: 'cy', key: 'sk-test-list-cy' });
      await revokeKey(written(start + 100 * DAY).deps, { user: 'cy', purge: false });

      const now = start + 101 * DAY;
      const rows = await listKeys(
        { provider: admin, profile: listProfile, now: () => now },
        { maxAgeMs: 90 * DAY, expiringWithinMs: 14 * DAY },
      );
      expect(rows.map((row) => [row.user, row.flags])).toEqual([
        ['amy', ['expiring']],
        ['ben', ['expired']],
        ['cy', ['revoked']],
        ['zoe', ['stale']],
      ]);
      const zoe = rows.find((row) => row.user === 'zoe')!;
      expect(zoe).toMatchObject({ lastRotated: '2026-01-01T00:00:00Z', ageDays: 101, expires: null, enabled: true });
      const current = (await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'team-list/amy'])) as {
        VersionId: string;
      };
      expect(rows[0]!.version).toBe(current.VersionId);
      const table = renderTable(rows, now);
      expect(table.split('\n')[0]).toBe('USER  VERSION        CREATED     LAST ROTATED  EXPIRES     AGE   FLAGS');
      expect(table).toContain('4 developers, 4 flagged');
      expect(JSON.stringify(rows) + table).not.toContain('sk-test-list');
    });

    it("goes through the store's paging: 1,050 developers, every one listed once, in order", async () => {
      const fleet = { ...profile, secret: 'fleet/{user}' };
      const users = Array.from({ length: 1_050 }, (_, index) => `dev${String(index).padStart(4, '0')}`);
      const started = performance.now();
      for (let index = 0; index < users.length; index += 25) {
        await Promise.all(
          users
            .slice(index, index + 25)
            .map((user) =>
              admin.write(`fleet/${user}`, `sk-test-fleet-${user}`, { labels: { 'managed-by': 'keybroker', 'keybroker-user': user } }),
            ),
        );
      }
      const wroteMs = performance.now() - started;
      const listStarted = performance.now();
      const rows = await listKeys({ provider: admin, profile: fleet, now: Date.now }, { maxAgeMs: 90 * DAY, expiringWithinMs: 14 * DAY });
      console.log(
        `paging: wrote ${users.length} secrets in ${Math.round(wroteMs)} ms, listed them in ${Math.round(performance.now() - listStarted)} ms`,
      );
      expect(rows.map((row) => row.user)).toEqual(users);
    });
  });
});
