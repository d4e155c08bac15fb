// Edges of the fault matrix through the built binary: store answers that are not a usable value,
// cached entries Claude Code would refuse, no home folder at all. The store is a small fake of
// Secrets Manager's GetSecretValue on 127.0.0.1 whose answer each test sets.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { developer, stderrLines, type Developer } from '../broker/e2e-world.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import { bindReadOnly, fullTmpfs } from '../support/other-user.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { loadConfig } from '../../src/config/config.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';

const STORED = 'sk-test-edge-stored';
/** What the fake store puts in `SecretString` (any JSON value, as a broken store or proxy might). */
let answer: unknown = STORED;
let server: http.Server;
let storeUrl = '';
let dev: Developer | undefined;

beforeAll(async () => {
  server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      response.end(
        JSON.stringify({
          ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:edge',
          Name: 'edge',
          VersionId: 'v1',
          SecretString: answer,
          CreatedDate: 1_700_000_000,
        }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  storeUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
afterEach(() => {
  answer = STORED;
  dev?.remove();
  dev = undefined;
});

/** Plants the profile's file-cache entry as an earlier `get` would have written it. */
function plantCached(d: Developer, key: string, ageMs: number): string {
  const file = path.join(
    d.home,
    'cache',
    'keys',
    `${sha256Hex(cacheAccount(loadConfig({ env: d.env }).profile, () => osLoginName(d.env))).slice(0, 24)}.json`,
  );
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, serializeEntry({ key, version: 'v0', secret: 'claude-code/keys/alice', fetchedAt: Date.now() - ageMs }), {
    mode: 0o600,
  });
  return file;
}

describe('a store answer that is not a usable value (item A)', () => {
  it('SecretString a number: exit 8 naming it, not an internal error; a still-valid cached key is served with one warning', async () => {
    answer = 123;
    dev = developer(storeUrl, { cache: { backend: 'file', refreshAfter: '1m' } });
    const cold = await dev.get();
    expect({ code: cold.code, stdout: cold.stdout }).toEqual({ code: 8, stdout: '' });
    expect(stderrLines(cold)).toEqual([
      `keybroker: the store answered secret "claude-code/keys/alice" with a number where the value's text belongs: store the key as text (or a JSON object such as {"api_key": "sk-..."}) with 'keybroker admin put'`,
    ]);

    plantCached(dev, 'sk-test-edge-cached', 5 * 60_000);
    const warm = await dev.get();
    expect({ code: warm.code, stdout: warm.stdout }).toEqual({ code: 0, stdout: 'sk-test-edge-cached' });
    expect(stderrLines(warm)).toEqual([
      expect.stringMatching(
        /^keybroker: the store answered .* with a number where the value's text belongs; serving the cached key read 5m(\d+s)? ago$/,
      ),
    ]);
  });

  it('SecretString an object: the same class (exit 8)', async () => {
    answer = { api_key: 'sk-test-edge-object' };
    dev = developer(storeUrl);
    const result = await dev.get();
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 8, stdout: '' });
    expect(result.stderr).toMatch(/^keybroker: the store answered .* with an object where the value's text belongs: [^\n]+\n$/);
    expect(result.stderr).not.toContain('sk-test-edge-object');
  });

  it('no HOME and no passwd entry: a configuration error with a fix (exit 3), not "store unreachable"', async () => {
    const uid = 54_322;
    expect(process.getuid?.()).toBe(0);
    expect(spawnSync('getent', ['passwd', String(uid)]).status, 'the test uid must have no passwd entry').toBe(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-edge-nohome-'));
    try {
      fs.writeFileSync(
        path.join(dir, 'config.json'),
        JSON.stringify({
          profiles: {
            default: {
              store: { type: 'aws', region: 'us-east-1', endpoint: storeUrl },
              secret: 'claude-code/keys/{user}',
              cache: { backend: 'none' },
            },
          },
        }),
        { mode: 0o644 },
      );
      fs.chownSync(dir, uid, uid);
      const env: NodeJS.ProcessEnv = {
        PATH: process.env['PATH'],
        USER: 'edge-dev',
        KEYBROKER_CONFIG: path.join(dir, 'config.json'),
        KEYBROKER_MACHINE_CONFIG: path.join(dir, 'machine.json'),
        KEYBROKER_CACHE_DIR: path.join(dir, 'cache'),
        KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'),
        AWS_ACCESS_KEY_ID: 'AKIDEDGETEST',
        AWS_SECRET_ACCESS_KEY: 'edge-test-secret',
      };
      const result = await runBinary(['--reuid', String(uid), '--regid', String(uid), '--clear-groups', BINARY, 'get'], {
        env,
        command: 'setpriv',
      });
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 3, stdout: '' });
      expect(stderrLines(result)).toEqual([
        `keybroker: the AWS SDK cannot find your home folder for AWS Secrets Manager (us-east-1, ${storeUrl}): HOME is not set and this user (uid ${uid}) has no entry in the user database; no request was sent: set HOME to your home folder (the AWS SDK reads ~/.aws there)`,
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('nothing unusable is printed, wherever it came from (item B)', () => {
  it("a fresh cached entry whose key has a space and a line break is not printed: the store's key replaces it", async () => {
    dev = developer(storeUrl);
    const file = plantCached(dev, 'sk-test-edge a\nb', 0);
    const result = await dev.get();
    expect(result).toMatchObject({ code: 0, stdout: STORED, stderr: '' });
    expect(JSON.parse(fs.readFileSync(file, 'utf8')).key).toBe(STORED);
  });

  it.each([
    ['[1,2]', 'an array'],
    ['null', 'null'],
    ['123', 'a number'],
    ['"sk-test-edge-quoted"', 'a string in quotes'],
  ])('a stored value %s is JSON but not an object: exit 8, never printed', async (value, kind) => {
    answer = value;
    dev = developer(storeUrl);
    const result = await dev.get();
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 8, stdout: '' });
    expect(stderrLines(result)).toEqual([
      `keybroker: the value of secret "claude-code/keys/alice" is JSON (${kind}) but not an object: store the key itself, or {"api_key": "sk-..."}`,
    ]);
  });
});

/** Runs `script` in bash with $0 = the binary; its exit code and stderr. */
async function inShell(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const result = await runBinary(['-c', script, BINARY], { env, command: 'bash' });
  return { code: result.code, stderr: result.stderr };
}

describe('standard output closed or a broken pipe is exit 11 (item D)', () => {
  it('get >&- (fd 1 closed at start): exit 11 with one line, though Node reopens fd 1 on /dev/null', async () => {
    dev = developer(storeUrl);
    const result = await inShell('exec "$0" get >&-', dev.env);
    expect(result).toEqual({
      code: 11,
      stderr:
        'keybroker: standard output is closed; nothing was delivered: run keybroker with its output going somewhere (Claude Code reads it through a pipe)\n',
    });
  });

  it("get >/dev/null (a shell's choice to discard, write-only) still exits 0", async () => {
    dev = developer(storeUrl);
    expect(await inShell('exec "$0" get >/dev/null', dev.env)).toEqual({ code: 0, stderr: '' });
  });

  it('a pipe whose reader has closed it: exit 11 with one line (EPIPE), not a silent 0', async () => {
    dev = developer(storeUrl);
    // The reader closes its end at once and lives on: keybroker's write meets a pipe no one reads.
    const result = await inShell('"$0" get | { exec 0<&-; sleep 2; }; exit "${PIPESTATUS[0]}"', dev.env);
    expect(result).toEqual({
      code: 11,
      stderr:
        'keybroker: cannot write to standard output (EPIPE: the program reading it has closed the pipe); nothing was delivered: keep the reading end open until keybroker exits\n',
    });
  });
});

describe('messages name the real cause (item E)', () => {
  it('a read-only XDG_RUNTIME_DIR is reported as read-only (EROFS), not ENOENT', async () => {
    dev = developer(storeUrl);
    const runtime = path.join(dev.home, 'xdg-runtime');
    fs.mkdirSync(runtime, { mode: 0o700 });
    const undo = bindReadOnly(runtime);
    try {
      const env: NodeJS.ProcessEnv = { ...dev.env, XDG_RUNTIME_DIR: runtime };
      delete env['KEYBROKER_RUNTIME_DIR'];
      const result = await runBinary(['get'], { env });
      expect(result).toMatchObject({ code: 0, stdout: STORED });
      expect(stderrLines(result)).toEqual([
        `keybroker: no refresh lock: cannot create ${runtime}/keybroker (EROFS: the file system is read-only); reading the store without it`,
      ]);
    } finally {
      undo();
    }
  });
});

/** A pid that was just used and is gone (its process exited). */
function deadPid(): number {
  const gone = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' });
  return Number(gone.stdout.trim());
}

/** Plants an unfinished write `<name>.<pid>.tmp` holding a plaintext key, `ageMs` old. */
function plantTemp(dir: string, name: string, pid: number, ageMs: number): string {
  const file = path.join(dir, `${name}.${pid}.tmp`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, serializeEntry({ key: 'sk-test-edge-leftover', version: 'v0', secret: 's', fetchedAt: 0 }), { mode: 0o600 });
  const then = new Date(Date.now() - ageMs);
  fs.utimesSync(file, then, then);
  return path.basename(file);
}

describe('nothing left behind (item C)', () => {
  it("a cache write killed before its rename: the next write removes temps older than 10 s or of a dead process, not a live writer's young one", async () => {
    dev = developer(storeUrl);
    const keys = path.join(dev.home, 'cache', 'keys');
    const entry = `${sha256Hex(cacheAccount(loadConfig({ env: dev.env }).profile, () => osLoginName(dev!.env))).slice(0, 24)}.json`;
    const other = `${'a'.repeat(24)}.json`;
    const killed = plantTemp(keys, entry, deadPid(), 0);
    const oldOfLive = plantTemp(keys, other, 1, 60_000);
    const liveYoung = plantTemp(keys, other, process.pid, 0);
    const result = await dev.get();
    expect(result).toMatchObject({ code: 0, stdout: STORED, stderr: '' });
    const left = fs.readdirSync(keys);
    expect(left).not.toContain(killed);
    expect(left).not.toContain(oldOfLive);
    expect(left.sort()).toEqual([entry, liveYoung].sort());
  });

  it('a full disk during the addon extraction leaves no temp, and cache clear --all works without the keychain (exit 0, says what it left)', async () => {
    dev = developer(storeUrl, { cache: { backend: 'keychain' } });
    const addons = path.join(dev.home, 'cache', 'addons');
    const undo = fullTmpfs(addons, (dir) => plantTemp(dir, 'keyring-0123456789abcdef.node', deadPid(), 60_000));
    try {
      const get = await dev.get();
      expect({ code: get.code, stdout: get.stdout }).toEqual({ code: 9, stdout: '' });
      expect(get.stderr).toMatch(/ENOSPC/);
      // Neither its own unfinished write nor an earlier killed one's is left.
      expect(fs.readdirSync(addons)).toEqual(['filler']);

      // A killed extraction's temp (empty: the disk is full) is swept by clear too.
      const killed = path.join(addons, `keyring-0123456789abcdef.node.${deadPid()}.tmp`);
      fs.writeFileSync(killed, '');
      fs.utimesSync(killed, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

      const clear = await runBinary(['cache', 'clear', '--all'], { env: dev.env });
      expect(clear.code).toBe(0);
      expect(clear.stdout).toBe(
        'profile "default": no cached key; the keychain could not be opened: an entry there is left\nremoved 1 more: keys cached under earlier settings or for removed profiles, and unfinished writes\n',
      );
      expect(stderrLines(clear)).toEqual([
        expect.stringMatching(
          /^keybroker: the keychain was not cleared \(cannot load the keychain library \(ENOSPC: .*\)\): its keybroker entries are left; run 'keybroker cache clear' again once it can be opened$/,
        ),
      ]);
      expect(fs.readdirSync(addons)).toEqual(['filler']);
    } finally {
      undo();
    }
  });
});
