// An import of 2,000 developers through the built binary, against moto, stopped midway by SIGTERM
// (it reports exactly who was written and who was not) and then, re-run, by SIGKILL (no report:
// the audit log and the store say it); the last re-run writes only the rest. In the end every
// developer is written exactly once: one version per secret, one "created" audit line per developer.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_TEST_CREDENTIALS, startMoto, type Moto } from '../support/moto.ts';
import { completeJsonLines } from './support.ts';

const root = path.resolve(import.meta.dirname, '../..');
const binary = path.join(root, 'dist', 'keybroker');
const ROWS = Number(process.env['KEYBROKER_TEST_KILL_ROWS'] ?? 2_000);
const users = Array.from({ length: ROWS }, (_, index) => `dev${String(index).padStart(4, '0')}`);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe(`admin import of ${ROWS} developers, interrupted`, () => {
  let moto: Moto;
  let home: string;
  let csv: string;
  let auditFile: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    moto = await startMoto();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-interrupt-'));
    csv = path.join(home, 'keys.csv');
    auditFile = path.join(home, 'audit.log');
    fs.writeFileSync(csv, `${['user,key', ...users.map((user) => `${user},sk-test-interrupt-${user}`)].join('\n')}\n`);
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: {
          default: {
            store: { type: 'aws', region: 'us-east-1', endpoint: moto.endpoint },
            secret: 'interrupt/{user}',
            field: 'api_key',
            timeout: '60s',
          },
        },
      }),
    );
    env = {
      PATH: process.env['PATH'],
      HOME: home,
      ...AWS_TEST_CREDENTIALS,
      KEYBROKER_CONFIG: config,
      KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
    };
  }, 120_000);
  afterAll(async () => {
    await moto?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  /** The import, killed with `signal` once the audit log holds `after` more lines than when it started. */
  function importRun(kill?: { signal: NodeJS.Signals; after: number }): Promise<Run> {
    const start = auditLines().length;
    const child = spawn(binary, ['admin', 'import', csv, '--audit-log', auditFile, '--concurrency', '16'], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let poll: NodeJS.Timeout | undefined;
    if (kill) {
      poll = setInterval(() => {
        if (auditLines().length - start >= kill.after) {
          clearInterval(poll);
          child.kill(kill.signal);
        }
      }, 20);
    }
    return new Promise((resolve) => child.on('close', (code, signal) => (clearInterval(poll), resolve({ code, signal, stdout, stderr }))));
  }

  /** The outcome lines (each write's intent line, written before it, left out). */
  function auditLines(): { user: string; outcome: string }[] {
    return completeJsonLines<{ user: string; outcome: string }>(auditFile).filter((line) => !line.outcome.startsWith('intent:'));
  }

  /** Each secret under the template and how many versions it has, straight from the store. */
  async function versions(): Promise<Map<string, number>> {
    const client = new SecretsManagerClient({
      region: 'us-east-1',
      endpoint: moto.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const found = new Map<string, number>();
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListSecretsCommand({ MaxResults: 100, NextToken: token, Filters: [{ Key: 'name', Values: ['interrupt/'] }] }),
      );
      for (const secret of page.SecretList ?? [])
        found.set(secret.Name!.slice('interrupt/'.length), Object.keys(secret.SecretVersionsToStages ?? {}).length);
      token = page.NextToken;
    } while (token);
    client.destroy();
    return found;
  }

  const listed = (stderr: string, label: string): string[] => {
    const line = stderr.split('\n').find((candidate) => candidate.startsWith(`keybroker: ${label} (`));
    expect(line, `a "${label}" line`).toBeDefined();
    const [, count, names] = /\((\d+)\): (.*)$/.exec(line!)!;
    const list = names === 'none' ? [] : names!.split(', ');
    expect(list).toHaveLength(Number(count));
    return list;
  };

  it('SIGTERM: the rows in flight finish, the report names exactly who was written and who was not; SIGKILL on the re-run loses nothing; the last re-run writes only the rest', async () => {
    // 1. SIGTERM midway.
    const first = await importRun({ signal: 'SIGTERM', after: Math.floor(ROWS / 8) });
    expect(first.code, first.stderr.slice(-500)).toBe(130);
    expect(first.stderr).toContain('keybroker: import interrupted; the writes in flight finished');
    const written = listed(first.stderr, 'written or already current');
    const notWritten = listed(first.stderr, 'not written');
    expect(written.length).toBeGreaterThanOrEqual(Math.floor(ROWS / 8));
    expect(written.length).toBeLessThan(ROWS);
    expect(new Set([...written, ...notWritten])).toEqual(new Set(users));
    expect(first.stderr).toMatch(
      /import from keys\.csv interrupted: \d+ written or already current, \d+ not written: run the same import again/,
    );
    let stored = await versions();
    expect(new Set(stored.keys())).toEqual(new Set(written));
    expect(
      new Set(
        auditLines()
          .filter((entry) => entry.outcome === 'created')
          .map((entry) => entry.user),
      ),
    ).toEqual(new Set(written));

    // 2. The re-run, killed with SIGKILL: no report, but nothing half-done either.
    const second = await importRun({ signal: 'SIGKILL', after: Math.floor(ROWS / 4) });
    expect(second.signal).toBe('SIGKILL');
    stored = await versions();
    expect(stored.size).toBeGreaterThan(written.length);
    expect(stored.size).toBeLessThan(ROWS);
    for (const [user, count] of stored) expect(count, user).toBe(1);

    // 3. The last re-run writes exactly the rest.
    const third = await importRun();
    expect(third.code, third.stderr.slice(-500)).toBe(0);
    expect(third.stdout).toBe(
      `imported ${ROWS} keys from keys.csv: ${ROWS - stored.size} created, 0 new versions, ${stored.size} unchanged\n`,
    );
    const final = await versions();
    expect(final.size).toBe(ROWS);
    for (const [user, count] of final) expect(count, user).toBe(1);
    // One "created" line per developer across the three runs (a SIGKILL may cut one line, never add one).
    const created = auditLines()
      .filter((entry) => entry.outcome === 'created')
      .map((entry) => entry.user);
    expect(new Set(created).size).toBe(created.length);
    expect(created.length).toBeGreaterThanOrEqual(ROWS - 16);
  }, 1_800_000);
});
