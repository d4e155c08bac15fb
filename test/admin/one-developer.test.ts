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
    fs.writeFileSync(config, JSON.stringify({ profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/keys/{user}', field: 'api_key', user: 'store' } } }));
    const admin = store.adminEnv;
    adminEnv = cleanEnv({ AWS_ACCESS_KEY_ID: admin['AWS_ACCESS_KEY_ID'], AWS_SECRET_ACCESS_KEY: admin['AWS_SECRET_ACCESS_KEY'], AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', KEYBROKER_CONFIG: config }, home);
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

    const plan = await runBinary(['admin', 'rotate', '--user', 'pia', '--dry-run', '--json'], { env: adminEnv, input: 'sk-test-one-pia-3' });
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
      fs.writeFileSync(issuing, JSON.stringify({ profiles: { default: { store: store.storeConfig(store.port), secret: 'claude-code/solo/{user}', field: 'api_key', user: 'store', keyIssuer: { type: 'litellm', url: litellm.url } } } }));
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
    expect(result.stderr).toContain('keys.json: line 1, column 1: not valid JSON (it must start with "["; for "user,key" lines use --format csv)');
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
});
