// What a platform engineer meets on a one-person pilot: the built binary against moto.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HarnessInstance } from '../providers/contract.ts';
import { cleanEnv, runBinary } from '../support/binary.ts';
import { startAwsStore } from './support.ts';
import { startFakeLiteLlm } from '../fakes/litellm.ts';

const SUMMARY_KEYS = ['action', 'complete', 'total', 'failed', 'interrupted', 'elapsedMs', 'throttles', 'pacedAt'];

describe('admin for one developer (binary)', () => {
  let store: HarnessInstance;
  let home: string;
  let config: string;
  let adminEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    store = await startAwsStore();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'keybroker-one-'));
    config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/keys/{user}', field: 'api_key', user: 'store' } },
      }),
    );
    const admin = store.adminEnv;
    adminEnv = cleanEnv(
      {
        AWS_ACCESS_KEY_ID: admin['AWS_ACCESS_KEY_ID'],
        AWS_SECRET_ACCESS_KEY: admin['AWS_SECRET_ACCESS_KEY'],
        AWS_REGION: 'us-east-1',
        AWS_EC2_METADATA_DISABLED: 'true',
        KEYBROKER_CONFIG: config,
      },
      home,
    );
  });
  afterAll(async () => {
    await store?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('--json gives the bulk summary for one developer: rotate --user, rotate --dry-run, revoke --user', async () => {
    const put = await runBinary(['admin', 'put', '--user', 'pia'], { env: adminEnv, input: 'sk-test-one-pia' });
    expect(put.code, put.stderr).toBe(0);

    const rotated = await runBinary(['admin', 'rotate', '--user', 'pia', '--json'], { env: adminEnv, input: 'sk-test-one-pia-2' });
    expect(rotated.code, rotated.stderr).toBe(0);
    const summary = JSON.parse(rotated.stdout) as Record<string, unknown>;
    for (const key of SUMMARY_KEYS) expect(summary, key).toHaveProperty(key);
    expect(summary).toMatchObject({ action: 'rotate', complete: true, total: 1, rotated: 1, failed: [], notRotated: [] });

    const plan = await runBinary(['admin', 'rotate', '--user', 'pia', '--dry-run', '--json'], {
      env: adminEnv,
      input: 'sk-test-one-pia-3',
    });
    expect(plan.code, plan.stderr).toBe(0);
    const planned = JSON.parse(plan.stdout) as { plan: { user: string; steps: string[] }[] };
    expect(planned).toMatchObject({ action: 'rotate', dryRun: true, complete: true, total: 1, rotated: 0 });
    expect(planned.plan[0]!.user).toBe('pia');
    expect(planned.plan[0]!.steps[1]).toMatch(/^write it as a new version of "claude-code\/keys\/pia"/);

    const revoked = await runBinary(['admin', 'revoke', '--user', 'pia', '--json'], { env: adminEnv });
    expect(revoked.code, revoked.stderr).toBe(0);
    const gone = JSON.parse(revoked.stdout) as Record<string, unknown>;
    for (const key of SUMMARY_KEYS) expect(gone, key).toHaveProperty(key);
    expect(gone).toMatchObject({ action: 'revoke', complete: true, total: 1, revoked: 1, notRevoked: [] });
    for (const output of [rotated, plan, revoked]) expect(output.stdout + output.stderr).not.toContain('sk-test-one');
  });

  it('rotate --all --json when the store holds one developer: the summary, not text', async () => {
    const litellm = await startFakeLiteLlm();
    try {
      const issuing = path.join(home, 'litellm.json');
      fs.writeFileSync(
        issuing,
        JSON.stringify({
          profiles: {
            default: {
              store: store.storeConfig(store.port),
              secret: 'claude-code/solo/{user}',
              field: 'api_key',
              user: 'store',
              keyIssuer: { type: 'litellm', url: litellm.url },
            },
          },
        }),
      );
      const env = { ...adminEnv, KEYBROKER_CONFIG: issuing, LITELLM_MASTER_KEY: litellm.masterKey };
      expect((await runBinary(['admin', 'put', '--user', 'quinn'], { env, input: 'sk-test-one-quinn' })).code).toBe(0);
      const result = await runBinary(['admin', 'rotate', '--all', '--now', '--json'], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ action: 'rotate', complete: true, total: 1, rotated: 1, notRotated: [] });
    } finally {
      await litellm.stop();
    }
  });

  it('a JSON import file that is not JSON at all: line and column, and the way out', async () => {
    const file = path.join(home, 'keys.json');
    fs.writeFileSync(file, 'user,key\nrex,sk-test-one-rex\n');
    const result = await runBinary(['admin', 'import', file], { env: adminEnv });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'keys.json: line 1, column 1: not valid JSON (it must start with "["; for "user,key" lines use --format csv)',
    );
    fs.writeFileSync(file, '[{"user": "rex", "key": "sk-test-one-rex"},\n ]');
    const trailing = await runBinary(['admin', 'import', file], { env: adminEnv });
    expect(trailing.stderr).toContain('keys.json: line 2, column 2: not valid JSON');
    expect(trailing.stdout + trailing.stderr + result.stderr).not.toContain('sk-test-one');
  });

  it.each(['import', 'rotate', 'revoke'])('admin %s --help: --audit-log among the options, before the closing paragraph', async (sub) => {
    const help = await runBinary(['admin', sub, '--help'], { env: adminEnv });
    expect(help.code).toBe(0);
    const options = help.stdout.slice(help.stdout.indexOf('Options:'), help.stdout.indexOf('\n\n', help.stdout.indexOf('Options:')));
    expect(options).toContain('--audit-log FILE');
    expect(options).toContain('--json');
  });

  it('footguns refused before any write: a past --expires-at (done with --force), --grace with --now; a template without {user}: admin refuses, doctor warns', async () => {
    const past = await runBinary(['admin', 'put', '--user', 'sam', '--expires-at', '2020-01-01T00:00:00Z'], {
      env: adminEnv,
      input: 'sk-test-one-sam',
    });
    expect(past.code).toBe(2);
    expect(past.stderr).toMatch(
      /^keybroker: --expires-at 2020-01-01T00:00:00.000Z is in the past: the key would be refused at once: .*--force/,
    );
    const listed = await runBinary(['admin', 'list', '--json'], { env: adminEnv });
    expect(listed.stdout).not.toContain('"sam"');
    const forced = await runBinary(['admin', 'put', '--user', 'sam', '--expires-at', '2020-01-01T00:00:00Z', '--force'], {
      env: adminEnv,
      input: 'sk-test-one-sam',
    });
    expect(forced.code, forced.stderr).toBe(0);

    const both = await runBinary(['admin', 'rotate', '--user', 'sam', '--grace', '1h', '--now', '--force'], {
      env: adminEnv,
      input: 'sk-test-one-sam-2',
    });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--grace and --now contradict each other');

    const shared = path.join(home, 'shared.json');
    fs.writeFileSync(
      shared,
      JSON.stringify({ profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/shared-key', user: 'store' } } }),
    );
    const env = { ...adminEnv, KEYBROKER_CONFIG: shared };
    // Admin actions refuse it (a configuration error, --force or not); doctor warns the developer.
    for (const args of [
      ['put', '--user', 'tom'],
      ['rotate', '--user', 'tom'],
      ['put', '--user', 'tom', '--force'],
    ]) {
      const refused = await runBinary(['admin', ...args], { env, input: 'sk-test-one-shared' });
      expect(refused.code, args.join(' ')).toBe(3);
      expect(refused.stderr).toContain('the profile\'s secret "claude-code/shared-key" has no {user}: every developer would share one key');
    }
    const doctor = JSON.parse((await runBinary(['doctor', '--json'], { env })).stdout) as {
      checks: { id: string; verdict: string; finding: string }[];
    };
    const name = doctor.checks.find((check) => check.id === 'store.secret-name')!;
    expect(name.verdict).toBe('WARN');
    expect(name.finding).toContain('has no {user}: every developer reads this one shared key');
  });

  it('"user": "os" with an AWS store: policy and doctor warn and say which to pick', async () => {
    const osUser = path.join(home, 'os-user.json');
    fs.writeFileSync(
      osUser,
      JSON.stringify({ profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/keys/{user}', user: 'os' } } }),
    );
    const env = { ...adminEnv, KEYBROKER_CONFIG: osUser };
    const policy = await runBinary(['admin', 'policy', '--only', 'developer'], { env });
    expect(policy.code, policy.stderr).toBe(0);
    expect(policy.stderr).toMatch(/^keybroker: warning: profile "default" has "user": "os": .*exit 6: set "user": "store"/);
    const doctor = JSON.parse((await runBinary(['doctor', '--json'], { env })).stdout) as {
      checks: { id: string; verdict: string; finding: string; fix?: string }[];
    };
    const name = doctor.checks.find((check) => check.id === 'store.secret-name')!;
    expect(name.verdict).toBe('WARN');
    expect(name.finding).toMatch(/\{user\} comes from the OS login "[^"]+" while AWS knows you as "[^"]+"/);
    expect(name.fix).toContain('set "user": "store"');
  });

  it('login --flow on a profile without SSO is refused; setup --write makes no backup when nothing changes', async () => {
    const login = await runBinary(['login', '--flow', 'device'], { env: adminEnv });
    expect(login.code).toBe(2);
    expect(login.stderr).toMatch(/^keybroker: --flow is for SSO profiles, and profile "default" reads a store \(aws\)/);

    const setup = ['setup', '--write', '--gateway', 'http://127.0.0.1:9'];
    const backups = () => fs.readdirSync(path.join(home, '.claude')).filter((name) => name.includes('keybroker-backup'));
    expect((await runBinary(setup, { env: adminEnv })).code).toBe(0);
    const again = await runBinary(setup, { env: adminEnv });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('already has these settings; not written, no backup');
    expect(backups()).toEqual([]);
    // A change is still written with its backup.
    expect((await runBinary(['setup', '--write', '--gateway', 'http://127.0.0.1:10'], { env: adminEnv })).code).toBe(0);
    expect(backups()).toHaveLength(1);
  });
});
