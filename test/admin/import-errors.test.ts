// `admin import` never prints any part of a key-bearing field, whatever its prefix: CSV that does
// not parse, JSON that does not parse (line and column only), a key in the user column, a key in
// the expiry column. Checked on the parser and through the built binary.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseImport } from '../../src/admin/import.ts';
import { openKeyIssuer } from '../../src/gateway/issuers.ts';
import type { KeybrokerError } from '../../src/kernel/errors.ts';
import { AWS_TEST_CREDENTIALS, startMoto, type Moto } from '../support/moto.ts';

const root = path.resolve(import.meta.dirname, '../..');
const binary = path.join(root, 'dist', 'keybroker');
const SECRET = 'TOPSECRET0123456789abcdefXYZ';

describe('import errors never echo a key', () => {
  it('a CSV with a stray quote after a glpat key: the line and what is wrong, no part of the value', () => {
    const { problems } = parseImport(`user,key\nalice,glpat${SECRET}"\n`, 'csv');
    expect(problems).toEqual(['line 2: not valid CSV (a quote inside a field that does not start with one)']);
  });

  it('a CSV whose quote never closes or closes early', () => {
    expect(parseImport(`user,key\nbob,"xoxb-${SECRET}\ncarol,x\n`, 'csv').problems).toEqual([
      'line 3: not valid CSV (a quote is never closed)',
    ]);
    expect(parseImport(`user,key\nbob,"${SECRET}"junk\n`, 'csv').problems).toEqual([
      'line 2: not valid CSV (a closing quote is followed by more characters)',
    ]);
  });

  it('JSON that does not parse: line and column only', () => {
    const text = `[\n  {"user": "alice", "key": "glpat-${SECRET}" "expires_at": null}\n]`;
    const { problems } = parseImport(text, 'json');
    expect(problems).toEqual([`line 2, column ${text.split('\n')[1]!.indexOf(' "expires_at"') + 2}: not valid JSON`]);
    expect(parseImport(`[{"user": "alice", "key": "${SECRET}`, 'json').problems[0]).toMatch(/^line 1, column \d+: not valid JSON$/);
  });

  it('a key in the user column or the expiry column is not shown', () => {
    const { problems } = parseImport(`user,key,expires_at\n${SECRET},alice\ndan,sk-test-import-dan,${SECRET}\n`, 'csv');
    expect(problems).toEqual([
      'line 2: the user name (a value that looks like a key, not shown) cannot be used: it looks like a key; the columns are user,key[,expires_at]',
      'line 3: expires_at is not an RFC 3339 time such as 2026-12-31T23:59:59Z',
    ]);
  });
});

describe('gateway errors never echo a key', () => {
  it('a LiteLLM error that quotes the key it refused, whatever its prefix, is masked', async () => {
    const server = http.createServer((_request, response) => {
      response.writeHead(400, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ error: { message: `Invalid key: glpat-${SECRET} is not allowed`, type: 'bad_request_error', code: '400' } }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const issuer = openKeyIssuer(
        { type: 'litellm', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` },
        { env: { LITELLM_MASTER_KEY: 'sk-test-master' }, timeoutMs: 5_000 },
      );
      const error = (await issuer.mint('alice').catch((caught: unknown) => caught)) as KeybrokerError;
      expect(error.line()).toMatch(/failed \/key\/generate \(HTTP 400: Invalid key: … is not allowed\)/);
      expect(error.line()).not.toContain('TOPSECRET');
    } finally {
      server.close();
    }
  });
});

describe('import errors through the binary', () => {
  let moto: Moto;
  let home: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    moto = await startMoto();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-import-errors-'));
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: {
          default: {
            store: { type: 'aws', region: 'us-east-1', endpoint: moto.endpoint },
            secret: 'claude-code/keys/{user}',
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

  const importFile = (name: string, text: string) =>
    new Promise<{ code: number; stderr: string; stdout: string }>((resolve) => {
      const file = path.join(home, name);
      fs.writeFileSync(file, text);
      execFile(binary, ['admin', 'import', file], { env }, (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
      );
    });

  it('a CSV row with a glpat key and a stray quote, and a JSON syntax error: exit 2, nothing of the key', async () => {
    const csv = await importFile('keys.csv', `user,key\nalice,glpat${SECRET}"\n`);
    expect(csv.code).toBe(2);
    expect(csv.stderr).toContain('keys.csv: line 2: not valid CSV');
    const json = await importFile('keys.json', `[{"user": "alice", "key": "glpat-${SECRET}" x}]`);
    expect(json.code).toBe(2);
    expect(json.stderr).toMatch(/keys\.json: line 1, column \d+: not valid JSON/);
    for (const output of [csv.stderr, csv.stdout, json.stderr, json.stdout]) {
      expect(output).not.toContain('TOPSECRET');
      expect(output).not.toContain(SECRET.slice(-8));
    }
  }, 120_000);
});
