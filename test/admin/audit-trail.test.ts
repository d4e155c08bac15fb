// Every store write is in the audit trail (the built binary against moto): the line is on disk
// before the write; an audit log that cannot be written stops the action before any write.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY, cleanEnv, runBinary } from '../support/binary.ts';
import { runTag } from '../support/run-tag.ts';
import { AWS_TEST_CREDENTIALS, startMoto, type Moto } from '../support/moto.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';

describe('admin import and its audit log (binary)', () => {
  let moto: Moto;
  let proxy: StoreProxy;
  let home: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startStoreProxy(moto.port);
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-audit-'));
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: {
          default: {
            store: { type: 'aws', region: 'us-east-1', endpoint: proxy.url },
            secret: 'trail/{user}',
            field: 'api_key',
            user: 'os',
            timeout: '30s',
          },
        },
      }),
    );
    env = cleanEnv({ ...AWS_TEST_CREDENTIALS, KEYBROKER_CONFIG: config }, home);
  }, 120_000);
  afterAll(async () => {
    await proxy?.stop();
    await moto?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  const csvOf = (name: string, users: string[]) => {
    const file = path.join(home, name);
    fs.writeFileSync(file, `${['user,key', ...users.map((user) => `${user},sk-test-trail-${user}`)].join('\n')}\n`);
    return file;
  };
  const stored = async (prefix: string): Promise<string[]> => {
    const listed = JSON.parse(await moto.aws(['secretsmanager', 'list-secrets', '--filters', `Key=name,Values=${prefix}`])) as {
      SecretList: { Name: string }[];
    };
    return listed.SecretList.map((secret) => secret.Name.slice('trail/'.length)).sort();
  };

  it('an audit log on a full disk (/dev/full): exit 3 naming the full disk, and nothing written to the store', async () => {
    const users = ['ann', 'ben', 'cat', 'dov'];
    const result = await runBinary(['admin', 'import', csvOf('full.csv', users), '--audit-log', '/dev/full'], { env });
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toMatch(
      /cannot write the audit log \/dev\/full: the disk holding it is full \(ENOSPC\).*free space on the disk of \/dev\/full/,
    );
    expect(result.stderr).not.toMatch(/internal error/);
    expect(await stored('trail/')).toEqual([]);
  });

  it('SIGKILL while writes are in flight: every secret the store ends up holding has its audit line', async () => {
    const users = Array.from({ length: 24 }, (_, index) => `k${String(index).padStart(2, '0')}`);
    const auditFile = path.join(home, 'killed.log');
    // Each store call waits, so that writes are still on their way when the kill comes, and land after it.
    proxy.delay(800);
    const child = spawn(BINARY, ['admin', 'import', csvOf('killed.csv', users), '--audit-log', auditFile, '--concurrency', '8'], {
      env: { ...env, ...runTag() },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    const creates = proxy.count('CreateSecret');
    while (proxy.count('CreateSecret') - creates < 8) await new Promise((resolve) => setTimeout(resolve, 10));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    proxy.delay(0);
    const inStore = await stored('trail/k');
    expect(inStore.length).toBeGreaterThan(0);
    const lines = fs
      .readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { user: string; outcome: string });
    const audited = new Set(lines.map((line) => line.user));
    expect(inStore.filter((user) => !audited.has(user))).toEqual([]);

    // The re-run writes the rest; the ones the kill left are "unchanged", each with its earlier intent line.
    const again = await runBinary(['admin', 'import', csvOf('killed.csv', users), '--audit-log', auditFile], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(await stored('trail/k')).toEqual(users);
  }, 120_000);
});
