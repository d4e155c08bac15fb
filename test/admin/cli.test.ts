// `keybroker admin …` as users run it: the built binary, config from a file, moto behind it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HarnessInstance } from '../providers/contract.ts';
import { cleanEnv, runBinary } from '../support/binary.ts';
import { iamPolicyProblems } from '../support/iam-grammar.ts';
import { startAwsStore } from './support.ts';
import { startFakeLiteLlm } from '../fakes/litellm.ts';
import { awsCli } from './aws-cli.ts';

describe('keybroker admin (binary)', () => {
  let store: HarnessInstance;
  let home: string;
  let adminEnv: NodeJS.ProcessEnv;
  let developerEnv: NodeJS.ProcessEnv;
  const exists = (name: string) =>
    awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', name]).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    store = await startAwsStore();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'keybroker-admin-'));
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/keys/{user}', field: 'api_key', user: 'store' } },
      }),
    );
    const pick = (env: NodeJS.ProcessEnv) => ({
      AWS_ACCESS_KEY_ID: env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: env['AWS_SECRET_ACCESS_KEY'],
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    adminEnv = cleanEnv({ ...pick(store.adminEnv), KEYBROKER_CONFIG: config }, home);
    developerEnv = cleanEnv({ ...pick(store.developerEnv), KEYBROKER_CONFIG: config, KEYBROKER_CACHE_BACKEND: 'none' }, home);
  });
  afterAll(async () => {
    await store?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('refuses a key given as an argument, without echoing it, and writes nothing', async () => {
    for (const args of [
      ['admin', 'put', '--user', 'alice', 'sk-test-cli-on-argv-123'],
      ['admin', 'put', '--user', 'alice', '--key', 'sk-test-cli-on-argv-123'],
    ]) {
      const result = await runBinary(args, { env: adminEnv, input: '' });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/^keybroker: .*(looks like a key|never taken from the command line).*stdin.*--from-file/);
      expect(result.stderr).not.toContain('sk-test-cli-on-argv-123');
    }
    expect(await exists('claude-code/keys/alice')).toBe(false);
  });

  it('refuses user names that would leave the template', async () => {
    for (const user of ['../bob', 'a/b', '']) {
      const result = await runBinary(['admin', 'put', '--user', user], { env: adminEnv, input: 'sk-test-cli-escape' });
      expect(result.code, user).toBe(2);
      expect(result.stderr).toMatch(/cannot be used in the secret name/);
    }
  });

  it("puts a key from stdin with an audit line in the file; the developer's get serves it; revoke ends it", async () => {
    const audit = path.join(home, 'audit.log');
    const before = Date.now();
    const put = await runBinary(['admin', 'put', '--user', 'alice', '--audit-log', audit], { env: adminEnv, input: 'sk-test-cli-alice\n' });
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(put.stdout).toMatch(/^alice: created secret "claude-code\/keys\/alice" \(version [0-9a-f-]+\)\n$/);
    const lines = fs
      .readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, string>);
    // The intent, on disk before the write, then its outcome.
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ action: 'put', user: 'alice', outcome: 'intent: store write' });
    lines.shift();
    expect(lines[0]).toMatchObject({
      actor: 'arn:aws:iam::123456789012:user/keybroker-admin',
      action: 'put',
      user: 'alice',
      secret: 'claude-code/keys/alice',
      outcome: 'created',
    });
    // Stamped while the command ran (whole seconds or better), not some other time.
    expect(Date.parse(lines[0]!['time']!)).toBeGreaterThanOrEqual(Math.floor(before / 1_000) * 1_000);
    expect(Date.parse(lines[0]!['time']!)).toBeLessThanOrEqual(Date.now());
    expect(fs.statSync(audit).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(audit, 'utf8')).not.toContain('sk-test-cli-alice');

    const get = await runBinary(['get'], { env: developerEnv });
    expect(get.stderr).toBe('');
    expect(get.stdout).toBe('sk-test-cli-alice');

    const revoke = await runBinary(['admin', 'revoke', '--user', 'alice'], { env: adminEnv });
    expect(revoke.code).toBe(0);
    expect(revoke.stderr).toMatch(/^keybroker: audit \{.*"action":"revoke","user":"alice"/);
    const after = await runBinary(['get'], { env: developerEnv });
    expect(after.code).toBe(5);
    expect(after.stdout).toBe('');
  });

  it('import: reports bad rows with line numbers, exit 2, nothing written; then imports the fixed file', async () => {
    const bad = path.join(home, 'bad.csv');
    fs.writeFileSync(bad, 'user,key\nfay,sk-test-cli-fay\ngus,sk-test-cli gus\nfay,sk-test-cli-fay-2\n');
    const result = await runBinary(['admin', 'import', bad], { env: adminEnv });
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n').filter(Boolean)).toEqual([
      'keybroker: bad.csv: line 3: the key for gus is not usable: it contains a space at position 12',
      'keybroker: bad.csv: line 4: fay is already on line 2; one key per developer',
      'keybroker: bad.csv has 2 problems (listed above); nothing was written: fix those lines and run the import again',
    ]);
    expect(await exists('claude-code/keys/fay')).toBe(false);

    const good = path.join(home, 'good.csv');
    fs.writeFileSync(good, 'fay,sk-test-cli-fay\ngus,sk-test-cli-gus,2027-06-30T00:00:00Z\n');
    const imported = await runBinary(['admin', 'import', good], { env: adminEnv });
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe('imported 2 keys from good.csv: 2 created, 0 new versions, 0 unchanged\n');

    const list = await runBinary(['admin', 'list', '--json'], { env: adminEnv });
    expect(list.code).toBe(0);
    const rows = JSON.parse(list.stdout) as { user: string; expires: string | null; flags: string[] }[];
    expect(rows.map((row) => [row.user, row.expires])).toEqual([
      ['alice', null],
      ['fay', null],
      ['gus', '2027-06-30T00:00:00Z'],
    ]);
    expect(rows[0]!.flags).toEqual(['revoked']);
    expect(list.stdout).not.toContain('sk-test-cli');
  });

  it('import --max-rate: a bad rate is refused before any call; a good one paces the store from the first call', async () => {
    const file = path.join(home, 'paced.csv');
    fs.writeFileSync(file, `user,key\n${Array.from({ length: 8 }, (_, index) => `paced${index},sk-test-cli-paced-${index}`).join('\n')}\n`);
    for (const bad of ['0', 'fast', '200000']) {
      const refused = await runBinary(['admin', 'import', file, '--max-rate', bad], { env: adminEnv });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`--max-rate must be a number of store calls a second from 0.1 to 100000, not "${bad}"`);
    }
    expect(await exists('claude-code/keys/paced0')).toBe(false);
    const started = Date.now();
    const imported = await runBinary(['admin', 'import', file, '--max-rate', '4', '--json'], { env: adminEnv });
    expect(imported.code).toBe(0);
    const summary = JSON.parse(imported.stdout) as { created: number; pacedAt: { store: number | null } };
    expect(summary).toMatchObject({ created: 8, pacedAt: { store: 4 } });
    // 16 store calls (a read and a create each) at 4 a second: at least 3.5 s after the first.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3_500);
  });

  it('put --from-file and import of the JSON form', async () => {
    const keyFile = path.join(home, 'hal.key');
    fs.writeFileSync(keyFile, 'sk-test-cli-hal\n', { mode: 0o600 });
    const put = await runBinary(['admin', 'put', '--user', 'hal', '--from-file', keyFile], { env: adminEnv });
    expect(put.code).toBe(0);
    const json = path.join(home, 'keys.json');
    fs.writeFileSync(
      json,
      JSON.stringify([
        { user: 'hal', key: 'sk-test-cli-hal' },
        { user: 'ida', key: 'sk-test-cli-ida', expires_at: '2027-03-01T00:00:00Z' },
      ]),
    );
    const imported = await runBinary(['admin', 'import', json], { env: adminEnv });
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe('imported 2 keys from keys.json: 1 created, 0 new versions, 1 unchanged\n');
    const hal = (await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/hal'])) as {
      SecretString: string;
    };
    expect(JSON.parse(hal.SecretString).api_key).toBe('sk-test-cli-hal');
  });

  it('rotate --dry-run prints the plan for a key from stdin and changes nothing', async () => {
    const before = await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/fay']);
    const result = await runBinary(['admin', 'rotate', '--user', 'fay', '--dry-run'], { env: adminEnv, input: 'sk-test-cli-fay-new' });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^fay: 1\. take the new key from the input; 2\. write it as a new version of "claude-code\/keys\/fay" \(now version [0-9a-f-]+\); 3\. leave the old key to the gateway/,
    );
    const after = await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/fay']);
    expect(after.VersionId).toBe(before.VersionId);
  });

  it('policy --only developer prints one IAM document with the account filled in', async () => {
    const result = await runBinary(['admin', 'policy', '--store', 'aws', '--only', 'developer'], { env: adminEnv });
    expect(result.code).toBe(0);
    const document = JSON.parse(result.stdout) as { Statement: { Resource: string }[] };
    expect(iamPolicyProblems(document)).toEqual([]);
    expect(document.Statement[0]!.Resource).toBe(
      'arn:aws:secretsmanager:us-east-1:123456789012:secret:claude-code/keys/${aws:username}-??????',
    );
    const vault = await runBinary(['admin', 'policy', '--store', 'vault'], { env: adminEnv });
    expect(vault.stdout).toContain('path "secret/data/claude-code/keys/{{identity.entity.name}}"');
  });

  it('rotate mints through LiteLLM with the master key from the environment, never argv, and writes the new key', async () => {
    const litellm = await startFakeLiteLlm();
    try {
      const config = path.join(home, 'litellm.json');
      fs.writeFileSync(
        config,
        JSON.stringify({
          profiles: {
            default: {
              store: store.storeConfig(store.port),
              secret: 'claude-code/keys/{user}',
              field: 'api_key',
              user: 'store',
              keyIssuer: { type: 'litellm', url: litellm.url, keyDuration: '90d' },
            },
          },
        }),
      );
      const env = { ...adminEnv, KEYBROKER_CONFIG: config, LITELLM_MASTER_KEY: litellm.masterKey };
      const before = (await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/gus'])) as {
        SecretString: string;
      };
      const result = await runBinary(['admin', 'rotate', '--user', 'gus', '--now'], { env });
      expect(result.stderr).toMatch(/^keybroker: audit \{.*"action":"rotate"/);
      expect(result.code).toBe(0);
      // gus's first key came from an import, not from this gateway: nothing to delete there.
      expect(result.stdout).toMatch(
        /^gus: rotated to version [0-9a-f-]+ of "claude-code\/keys\/gus"; the old key was not one the gateway knows \(nothing to retire there\)\n$/,
      );
      const after = JSON.parse(
        ((await awsCli(store, ['secretsmanager', 'get-secret-value', '--secret-id', 'claude-code/keys/gus'])) as { SecretString: string })
          .SecretString,
      ) as { api_key: string; expires_at: string };
      expect(after.api_key).not.toBe(JSON.parse(before.SecretString).api_key);
      expect(litellm.accepts(after.api_key)).toBe(true);
      expect(Date.parse(after.expires_at) - Date.now()).toBeGreaterThan(89 * 86_400_000);
      expect(litellm.adminCalls.map((call) => [call.route, call.authorized, call.body['user_id']])).toEqual([
        ['/key/generate', true, 'gus'],
        ['/key/delete', true, undefined],
      ]);
      expect(result.stdout + result.stderr).not.toContain(litellm.masterKey);
      expect(result.stdout + result.stderr).not.toContain(after.api_key);

      const missing = await runBinary(['admin', 'rotate', '--user', 'gus'], { env: { ...env, LITELLM_MASTER_KEY: '' } });
      expect(missing.code).toBe(3);
      expect(missing.stderr).toMatch(/LITELLM_MASTER_KEY is not set.*export LITELLM_MASTER_KEY \(never pass it as an argument\)/);
    } finally {
      await litellm.stop();
    }
  });

  it("policy for another store type names the secrets as that store's provider does", async () => {
    const { secretIdFor } = await import('../../providers/gcp.ts');
    const { keyVaultName } = await import('../../providers/azure.ts');
    const gcp = await runBinary(['admin', 'policy', '--store', 'gcp', '--user', 'alice@example.com', '--only', 'condition'], {
      env: adminEnv,
    });
    expect(gcp.code, gcp.stderr).toBe(0);
    expect(gcp.stdout).toContain(`"/secrets/${secretIdFor('claude-code/keys/alice@example.com')}"`);
    const azure = await runBinary(['admin', 'policy', '--store', 'azure', '--user', 'alice@contoso.com', '--only', 'developer'], {
      env: adminEnv,
    });
    expect(azure.code, azure.stderr).toBe(0);
    expect(azure.stdout).toContain(`/secrets/${keyVaultName('claude-code/keys/alice@contoso.com')}'`);
  });

  it('explains a missing or unknown admin command', async () => {
    const none = await runBinary(['admin'], { env: adminEnv });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/admin needs a command: use one of: put, import, rotate, revoke, list, policy/);
    const help = await runBinary(['admin', '--help'], { env: adminEnv });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('keys are read from stdin or --from-file, never argv');
  });

  it.each(['put', 'import', 'rotate', 'revoke', 'list', 'policy'])(
    "admin %s --help prints that command's own usage and examples, not the whole admin page",
    async (sub) => {
      const help = await runBinary(['admin', sub, '--help'], { env: adminEnv });
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: keybroker admin ${sub} `));
      const examples = help.stdout.slice(help.stdout.indexOf('Examples:'));
      expect(examples).toContain(`keybroker admin ${sub}`);
      expect(examples.match(/keybroker admin \w+/g)!.every((line) => line === `keybroker admin ${sub}`)).toBe(true);
      expect(help.stdout).toContain('Options for every command:');
    },
  );
});
