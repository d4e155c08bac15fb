// Must-show 2: the built binary caches in a real Secret Service (gnome-keyring on a private
// D-Bus), checked with secret-tool; and `auto` copes with no Secret Service at all. Passing
// also proves the single executable extracts and dlopens the keyring addon (src/loader/chunks.ts).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary } from '../support/binary.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';
import { userRuntimeDir } from '../../src/kernel/paths.ts';
import { loadConfig } from '../../src/config/config.ts';
import { parseEntry } from '../../src/cache/entry.ts';

import { expectWithinBound, processStart } from '../support/time-bounds.ts';

// With no Secret Service, `auto` must decide at once (no bus, or no keyring on it, answers in
// milliseconds): nothing configured to wait for, so a cold get's worth of process starts, not the
// keychain's 2 s bound.
const NO_KEYCHAIN_WAIT_MS = 0;

let moto: Moto;
const started: Moto[] = [];
let counter = 0;

async function startStore(): Promise<void> {
  moto = await startMoto();
  started.push(moto);
}
beforeAll(startStore);
afterAll(async () => {
  await Promise.all(started.map((server) => server.stop()));
});

async function provision(key: string): Promise<string> {
  const name = `e2e/keychain/${++counter}`;
  await moto.aws(['secretsmanager', 'create-secret', '--name', name, '--secret-string', key]);
  return name;
}

/** The keychain account keybroker uses for this environment's profile (service "keybroker"). */
function accountFor(env: NodeJS.ProcessEnv): string {
  return cacheAccount(loadConfig({ env }).profile, () => osLoginName(env));
}

/** Files under `dir` whose bytes contain `text`. */
function filesContaining(dir: string, text: string): string[] {
  const names = fs.readdirSync(dir, { recursive: true }) as string[];
  return names.filter((name) => {
    const file = path.join(dir, name);
    return fs.statSync(file).isFile() && fs.readFileSync(file).includes(text);
  });
}

describe('with a real Secret Service (gnome-keyring)', () => {
  let keyring: SecretService;
  let home: TestHome;
  const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...home.env(extra), ...keyring.env, ...extra });

  beforeAll(async () => {
    keyring = await startSecretService();
    home = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'auto' } }), keyring.home);
  });
  afterAll(async () => {
    await keyring?.stop();
  });

  it('ignores a corrupt cache entry and replaces it with the key from the store', async () => {
    const key = 'sk-test-e2e-keychain-corrupt';
    const secret = await provision(key);
    const account = accountFor(env({ KEYBROKER_SECRET: secret }));
    await keyring.store({ service: 'keybroker', username: account }, '{"v":1,"key":');

    const result = await runBinary([], { env: env({ KEYBROKER_SECRET: secret }) });
    expect(result).toMatchObject({ code: 0, stdout: key, stderr: '' });
    expect(parseEntry((await keyring.lookup({ service: 'keybroker', username: account }))!)).toMatchObject({ key, secret });
  });

  it('a keychain-hung marker stamped an hour ahead (the clock was set back) switches nothing off: "keychain" and "auto" use the keychain', async () => {
    const key = 'sk-test-e2e-keychain-future-marker';
    const secret = await provision(key);
    const named = env({ KEYBROKER_SECRET: secret, KEYBROKER_CACHE_BACKEND: 'keychain' });
    const marker = path.join(userRuntimeDir(named), 'keychain-hung');
    fs.mkdirSync(path.dirname(marker), { recursive: true, mode: 0o700 });
    fs.writeFileSync(marker, 'planted\n', { mode: 0o600 });
    const future = new Date(Date.now() + 3_600_000);
    fs.utimesSync(marker, future, future);
    try {
      expect(await runBinary([], { env: named })).toMatchObject({ code: 0, stdout: key, stderr: '' });
      expect(parseEntry((await keyring.lookup({ service: 'keybroker', username: accountFor(named) }))!)).toMatchObject({ key, secret });
      // auto: no fall back to the plaintext file cache either.
      expect(await runBinary([], { env: env({ KEYBROKER_SECRET: secret }) })).toMatchObject({ code: 0, stdout: key, stderr: '' });
      expect(fs.existsSync(path.join(home.dir, '.cache/keybroker/keys'))).toBe(false);
    } finally {
      fs.rmSync(marker, { force: true });
    }
  });

  it('caches the key in the keychain and serves it with the store stopped, writing no cache file', async () => {
    const key = 'sk-test-e2e-keychain-cached';
    const secret = await provision(key);
    const account = accountFor(env({ KEYBROKER_SECRET: secret }));

    const first = await runBinary([], { env: env({ KEYBROKER_SECRET: secret }) });
    expect(first).toMatchObject({ code: 0, stdout: key, stderr: '' });
    const stored = await keyring.lookup({ service: 'keybroker', username: account });
    expect(parseEntry(stored!)).toMatchObject({ key, secret });
    expect(await keyring.accounts('keybroker')).toContain(account);
    // The single executable carried the keyring addon and loaded it from the per-user cache.
    expect(fs.readdirSync(path.join(home.dir, '.cache/keybroker/addons'))).toEqual([expect.stringMatching(/^keyring-[0-9a-f]{16}\.node$/)]);

    await moto.stop();
    const second = await runBinary([], { env: env({ KEYBROKER_SECRET: secret }) });
    expect(second).toMatchObject({ code: 0, stdout: key, stderr: '' });

    // gnome-keyring's own file is encrypted: no file under HOME holds the key in the clear.
    expect(filesContaining(home.dir, key)).toEqual([]);
    expect(fs.existsSync(path.join(home.dir, '.cache/keybroker/keys'))).toBe(false);
  });
});

describe('with no Secret Service at all, backend auto', () => {
  let home: TestHome;
  beforeAll(async () => {
    await startStore();
    home = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'auto' } }));
  });
  afterAll(() => home?.remove());

  async function expectServedWithOneNotice(env: NodeJS.ProcessEnv, key: string): Promise<number> {
    const yardstick = await processStart();
    const first = await runBinary([], { env });
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(key);
    expect(first.stderr).toMatch(
      /^keybroker: no usable keychain \((this session has no Secret Service|no keyring answers on this session bus)[^\n]+\); not caching the key \(each call reads the store\): set "cache": \{"fallback": "file"\}[^\n]*\n$/,
    );
    await expectWithinBound('a get with no usable keychain', first.ms, NO_KEYCHAIN_WAIT_MS, yardstick);

    const second = await runBinary([], { env });
    expect(second).toMatchObject({ code: 0, stdout: key, stderr: '' });
    expect(filesContaining(home.dir, key)).toEqual([]);
    return first.ms;
  }

  it('serves the key from the store and says once that it does not cache (bus without a keyring)', async () => {
    const bus = await startSecretService({ withoutKeyring: true });
    try {
      const key = 'sk-test-e2e-bus-no-keyring';
      const secret = await provision(key);
      const ms = await expectServedWithOneNotice({ ...home.env(), ...bus.env, HOME: home.dir, KEYBROKER_SECRET: secret }, key);
      console.info(`no keyring on the bus: first get ${Math.round(ms)} ms`);
    } finally {
      await bus.stop();
    }
  });

  it('serves the key from the store and says once that it does not cache (no session bus)', async () => {
    fs.rmSync(path.join(home.dir, '.cache/keybroker'), { recursive: true, force: true });
    const runtime = fs.mkdtempSync(path.join(home.dir, 'run-'));
    const key = 'sk-test-e2e-no-bus';
    const secret = await provision(key);
    const ms = await expectServedWithOneNotice(home.env({ XDG_RUNTIME_DIR: runtime, KEYBROKER_SECRET: secret }), key);
    console.info(`no session bus: first get ${Math.round(ms)} ms`);
  });

  it("serves the key at once when its cache and runtime folders point under /proc (where Node's mkdir spins forever)", async () => {
    const key = 'sk-test-e2e-proc-folders';
    const secret = await provision(key);
    const env = home.env({
      KEYBROKER_CACHE_DIR: '/proc/keybroker-e2e/cache',
      KEYBROKER_RUNTIME_DIR: '/proc/keybroker-e2e/run',
      KEYBROKER_SECRET: secret,
    });
    const yardstick = await processStart();
    const result = await runBinary([], { env, timeoutMs: 60_000 });
    expect(result).toMatchObject({ code: 0, stdout: key });
    // Such folders are ignored, as relative ones are (one line), and the usual ones used: nothing is made under /proc.
    expect(result.stderr).toMatch(/^keybroker: ignoring KEYBROKER_CACHE_DIR, KEYBROKER_RUNTIME_DIR: it leads into \/proc/);
    expect(result.stderr).not.toMatch(/keybroker-e2e/);
    await expectWithinBound('a get whose folders are under /proc', result.ms, NO_KEYCHAIN_WAIT_MS, yardstick);
  });

  it('caches in a private file instead when the profile says "fallback": "file"', async () => {
    const key = 'sk-test-e2e-fallback-file';
    const secret = await provision(key);
    home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'auto', fallback: 'file' } }));
    const env = home.env({ XDG_RUNTIME_DIR: fs.mkdtempSync(path.join(home.dir, 'run-')), KEYBROKER_SECRET: secret });
    const first = await runBinary([], { env });
    expect(first).toMatchObject({ code: 0, stdout: key });
    expect(first.stderr).toMatch(
      /^keybroker: no usable keychain .*; caching the key in a private file under \S+ instead \("fallback": "file"\)\n$/,
    );
    const files = filesContaining(home.dir, key);
    expect(files).toHaveLength(1);
    const file = path.join(home.dir, files[0]!);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
  });
});

describe('"backend": "keychain" (named, not auto) with no usable keychain', () => {
  let home: TestHome;
  let proxy: StoreProxy;
  beforeAll(async () => {
    await startStore();
    proxy = await startStoreProxy(moto.port);
    home = makeTestHome(awsConfig(proxy.url, { cache: { backend: 'keychain' } }));
  });
  afterAll(async () => {
    await proxy?.stop();
    home?.remove();
  });

  /** Exit 9 (README "Exit codes"), nothing on stdout, one line; returns the store reads it made. */
  async function expectCacheUnavailable(env: NodeJS.ProcessEnv, args: string[] = []): Promise<number> {
    const before = proxy.count('GetSecretValue');
    const result = await runBinary(args, { env });
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 9, stdout: '' });
    expect(result.stderr).toMatch(/^keybroker: [^\n]*(keyring|keychain)[^\n]*: unlock your login keyring[^\n]*\n$/);
    return proxy.count('GetSecretValue') - before;
  }

  it('get exits 9 on every call (bus without a keyring)', async () => {
    const bus = await startSecretService({ withoutKeyring: true });
    try {
      const secret = await provision('sk-test-e2e-keychain-required');
      const env = { ...home.env(), ...bus.env, HOME: home.dir, KEYBROKER_SECRET: secret };
      // A bus without a keyring answers a lookup with "no such item"; only the write fails, so
      // each get has read the store once by then, and still prints nothing.
      for (let run = 0; run < 2; run++) expect(await expectCacheUnavailable(env)).toBeLessThanOrEqual(1);
    } finally {
      await bus.stop();
    }
  });

  it('get and status exit 9 with no session bus at all, without reading the store', async () => {
    const secret = await provision('sk-test-e2e-keychain-required-no-bus');
    const env = home.env({ XDG_RUNTIME_DIR: fs.mkdtempSync(path.join(home.dir, 'run-')), KEYBROKER_SECRET: secret });
    expect(await expectCacheUnavailable(env)).toBe(0);
    expect(await expectCacheUnavailable(env, ['status'])).toBe(0);
  });
});
