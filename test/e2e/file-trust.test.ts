// Nothing another local user, a cloned repository or a stale file controls is trusted (docs/security.md):
// the keychain addon, relative folders, cache entries, state records and `cache clear`, through the
// built binary, with a second local user (uid 65534) where the point is another user.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BINARY, runBinary } from '../support/binary.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { chownToOther, OTHER_UID, runBinaryAsOther } from '../support/other-user.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';
import { loadConfig } from '../../src/config/config.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';
import { fingerprint } from '../../src/secret/value.ts';

const homes: TestHome[] = [];
afterEach(() => {
  for (const home of homes.splice(0)) home.remove();
});
function newHome(config: unknown): TestHome {
  const home = makeTestHome(config);
  homes.push(home);
  return home;
}

/** The name the built binary gives its extracted addon (bin/build.ts: the first 16 hex of its SHA-256). */
const ADDON_NAME = `keyring-${createHash('sha256')
  .update(fs.readFileSync(path.join(path.dirname(BINARY), 'keyring.node')))
  .digest('hex')
  .slice(0, 16)}.node`;

/** A shared object that, when loaded, writes `marker`: the stand-in for an attacker's addon. */
function buildPlantedAddon(dir: string, marker: string): string {
  const source = path.join(dir, 'planted.c');
  fs.writeFileSync(
    source,
    `#include <stdio.h>\n__attribute__((constructor)) static void planted(void) { FILE *f = fopen(${JSON.stringify(marker)}, "w"); if (f) { fputs("ran", f); fclose(f); } }\n`,
  );
  const out = path.join(dir, 'planted.node');
  execFileSync('gcc', ['-shared', '-fPIC', '-o', out, source]);
  return out;
}

describe('the keychain addon', () => {
  let scratch: string;
  let planted: string;
  let marker: string;
  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-addon-'));
    fs.chmodSync(scratch, 0o755);
    marker = path.join(scratch, 'planted-code-ran');
    planted = buildPlantedAddon(scratch, marker);
  });
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
  afterEach(() => fs.rmSync(marker, { force: true }));

  // The keychain backend loads the addon before it talks to any keychain; the store is never reached.
  const keychainConfig = awsConfig('http://127.0.0.1:9', { cache: { backend: 'keychain' } });
  const addonsDir = (home: TestHome) => path.join(home.dir, '.cache', 'keybroker', 'addons');

  it('has a planted addon that does run when loaded (so the tests below would see it run)', () => {
    try {
      execFileSync(process.execPath, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(planted)})`], { stdio: 'ignore' });
    } catch {
      // Not a Node-API module: Node refuses it, after its code ran.
    }
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran');
  });

  it('never runs an addon the same user replaced: it is written over with the built-in bytes', async () => {
    const home = newHome(keychainConfig);
    await runBinary([], { env: home.env() });
    const extracted = path.join(addonsDir(home), ADDON_NAME);
    expect(fs.readFileSync(extracted).equals(fs.readFileSync(path.join(path.dirname(BINARY), 'keyring.node')))).toBe(true);
    fs.chmodSync(extracted, 0o700);
    fs.copyFileSync(planted, extracted);
    fs.chmodSync(extracted, 0o500);

    await runBinary([], { env: home.env() });
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.readFileSync(extracted).equals(fs.readFileSync(path.join(path.dirname(BINARY), 'keyring.node')))).toBe(true);
  });

  it('never runs an addon another user planted in the folder', async () => {
    const home = newHome(keychainConfig);
    fs.mkdirSync(addonsDir(home), { recursive: true, mode: 0o700 });
    const target = path.join(addonsDir(home), ADDON_NAME);
    fs.copyFileSync(planted, target);
    fs.chownSync(target, OTHER_UID, OTHER_UID);
    fs.chmodSync(target, 0o755);

    await runBinary([], { env: home.env() });
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.statSync(target).uid).toBe(process.getuid!());
  });

  // Run as a developer who is not root (uid 65534): root reads any file whatever its mode.
  it('replaces an addon it cannot read (a 0700 file of another user in its folder) instead of failing every load', async () => {
    const home = newHome(keychainConfig);
    fs.mkdirSync(addonsDir(home), { recursive: true, mode: 0o700 });
    const target = path.join(addonsDir(home), ADDON_NAME);
    fs.copyFileSync(planted, target);
    chownToOther(home.dir);
    fs.chownSync(target, 0, 0);
    fs.chmodSync(target, 0o700);

    const result = await runBinaryAsOther([], { env: home.env() });
    expect(result.stderr).not.toContain('cannot load the keychain library');
    expect(fs.existsSync(marker)).toBe(false);
    expect(fs.statSync(target).uid).toBe(OTHER_UID);
    expect(fs.readFileSync(target).equals(fs.readFileSync(path.join(path.dirname(BINARY), 'keyring.node')))).toBe(true);
  });

  it('does not load anything from an addons folder that belongs to another user', async () => {
    const home = newHome(keychainConfig);
    fs.mkdirSync(addonsDir(home), { recursive: true, mode: 0o755 });
    fs.copyFileSync(planted, path.join(addonsDir(home), ADDON_NAME));
    chownToOther(addonsDir(home));

    const result = await runBinary([], { env: home.env() });
    expect(fs.existsSync(marker)).toBe(false);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/cannot load the keychain library \(.*belongs to another user/);
  });

  it('ignores relative cache, runtime and config folders, which would be the project Claude Code runs in, with one line', async () => {
    const home = newHome(keychainConfig);
    const project = fs.mkdtempSync(path.join(home.dir, 'cloned-repo-'));
    for (const relative of ['rel-cache/keybroker/addons', 'rel-kb-cache/addons']) {
      fs.mkdirSync(path.join(project, relative), { recursive: true, mode: 0o700 });
      fs.copyFileSync(planted, path.join(project, relative, ADDON_NAME));
    }
    fs.writeFileSync(path.join(project, 'rel-config.json'), JSON.stringify(awsConfig('http://127.0.0.1:9', { secret: 'from-the-repo' })));
    for (const variables of [{ XDG_CACHE_HOME: 'rel-cache' }, { KEYBROKER_CACHE_DIR: 'rel-kb-cache', KEYBROKER_RUNTIME_DIR: 'rel-run' }]) {
      const result = await runBinary([], { env: home.env(variables), cwd: project });
      expect(fs.existsSync(marker)).toBe(false);
      const lines = result.stderr.split('\n').filter(Boolean);
      expect(lines[0]).toBe(
        `keybroker: ignoring ${Object.keys(variables).join(', ')}: not an absolute path (Claude Code runs keybroker in your project's folder, which would then choose where keys are kept); set an absolute path`,
      );
      expect(fs.existsSync(path.join(home.dir, '.cache', 'keybroker', 'addons', ADDON_NAME))).toBe(true);
    }
    expect(fs.existsSync(path.join(project, 'rel-run'))).toBe(false);

    const config = await runBinary(['config'], { env: { ...home.env(), KEYBROKER_CONFIG: 'rel-config.json' }, cwd: project });
    expect(config.stderr).toMatch(/^keybroker: ignoring KEYBROKER_CONFIG: not an absolute path/);
    expect(config.stdout).not.toContain('from-the-repo');
  });
});

describe('cache entries and state records', () => {
  let moto: Moto;
  let counter = 0;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => moto?.stop());

  async function provision(key: string): Promise<string> {
    const name = `e2e/trust/${++counter}`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', name, '--secret-string', key]);
    return name;
  }
  function fileProfile(secret: string, profile: Record<string, unknown> = {}) {
    return awsConfig(moto.endpoint, { secret, cache: { backend: 'file' }, ...profile });
  }
  const accountOf = (home: TestHome) => cacheAccount(loadConfig({ env: home.env() }).profile, () => osLoginName(home.env()));
  const keysDir = (home: TestHome) => path.join(home.dir, '.cache', 'keybroker', 'keys');
  const cacheFileOf = (home: TestHome) => path.join(keysDir(home), `${sha256Hex(accountOf(home)).slice(0, 24)}.json`);
  const stateDir = (home: TestHome) => path.join(home.dir, 'run', 'state');
  const stateFile = (home: TestHome, kind: string) =>
    path.join(stateDir(home), `${sha256Hex([kind, accountOf(home)].join('\0')).slice(0, 24)}.${kind}`);
  const entry = (key: string, secret: string) => serializeEntry({ key, version: 'planted', secret, fetchedAt: Date.now() });

  it('never serves a cache file another user planted in the folder (or a link to one): it reads the store', async () => {
    const secret = await provision('sk-test-trust-own');
    const home = newHome(fileProfile(secret));
    const file = cacheFileOf(home);
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(file, entry('sk-test-ATTACKER', secret), { mode: 0o644 });
    fs.chownSync(file, OTHER_UID, OTHER_UID);

    const planted = await runBinary([], { env: home.env() });
    expect(planted.stdout).toBe('sk-test-trust-own');
    expect(planted.code).toBe(0);
    expect(planted.stderr).toMatch(
      /^keybroker: the cache file .* belongs to another user \(uid 65534\): not used: nothing to do: keybroker reads the store and replaces it\n$/,
    );
    expect(fs.statSync(file).uid).toBe(process.getuid!());

    const elsewhere = path.join(home.dir, 'elsewhere.json');
    fs.writeFileSync(elsewhere, entry('sk-test-ATTACKER', secret), { mode: 0o600 });
    fs.rmSync(file);
    fs.symlinkSync(elsewhere, file);
    const linked = await runBinary([], { env: home.env() });
    expect(linked).toMatchObject({ code: 0, stdout: 'sk-test-trust-own' });
    expect(linked.stderr).toMatch(/is a symbolic link: not used/);
  });

  it('ignores a store-failure record from the future (clock set back, or planted): get and get --recheck read the store', async () => {
    const secret = await provision('sk-test-trust-future');
    const home = newHome(fileProfile(secret));
    const env = home.env({ KEYBROKER_RUNTIME_DIR: path.join(home.dir, 'run') });
    fs.mkdirSync(stateDir(home), { recursive: true, mode: 0o700 });
    const record = { at: Date.now() + 3_600_000, kind: 'StoreUnreachable', message: 'planted failure', fix: 'wait an hour' };
    fs.writeFileSync(stateFile(home, 'failure'), JSON.stringify(record), { mode: 0o600 });

    for (const args of [[], ['get', '--recheck']]) {
      const result = await runBinary(args, { env });
      expect(result).toMatchObject({ code: 0, stdout: 'sk-test-trust-future' });
      expect(result.stderr).not.toContain('planted failure');
      fs.writeFileSync(stateFile(home, 'failure'), JSON.stringify(record), { mode: 0o600 });
    }
  });

  it('ignores the records of a state folder that belongs to another user', async () => {
    const secret = await provision('sk-test-trust-state');
    const home = newHome(fileProfile(secret));
    const env = home.env({ KEYBROKER_RUNTIME_DIR: path.join(home.dir, 'run') });
    expect((await runBinary([], { env })).stdout).toBe('sk-test-trust-state');
    // Planted: "this key was re-checked a moment ago and the gateway refused it".
    const verdict = {
      at: Date.now(),
      fingerprint: fingerprint('sk-test-trust-state'),
      verdict: 'rejected',
      gateway: 'https://planted.example',
    };
    fs.writeFileSync(stateFile(home, 'recheck'), JSON.stringify(verdict), { mode: 0o644 });
    chownToOther(stateDir(home));
    fs.chmodSync(stateDir(home), 0o755);

    const result = await runBinary(['get', '--recheck'], { env });
    expect(result.stderr).not.toContain('planted.example');
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-trust-state' });
  });

  it('cache clear removes entries of earlier settings of the profile and unfinished writes; --all removes every entry', async () => {
    const secret = await provision('sk-test-trust-clear');
    const home = newHome({
      profiles: {
        default: fileProfile(secret).profiles.default,
        other: fileProfile(secret).profiles.default,
      },
    });
    expect((await runBinary([], { env: home.env() })).code).toBe(0);
    expect((await runBinary(['--profile', 'other'], { env: home.env() })).code).toBe(0);
    const otherFile = path.join(keysDir(home), fs.readdirSync(keysDir(home)).find((name) => name !== path.basename(cacheFileOf(home)))!);
    // The profile's secret changed since: its old entry is under another name now.
    const stale = path.join(keysDir(home), `${sha256Hex('default:0123456789ab').slice(0, 24)}.json`);
    fs.writeFileSync(stale, entry('sk-test-trust-old', 'old/secret'), { mode: 0o600 });
    const unfinished = `${cacheFileOf(home)}.4242.tmp`;
    fs.writeFileSync(unfinished, entry('sk-test-trust-half', secret), { mode: 0o600 });

    const cleared = await runBinary(['cache', 'clear'], { env: home.env() });
    expect(cleared.code).toBe(0);
    expect(cleared.stdout).toBe(
      'profile "default": removed the cached key from the file cache\nremoved 2 more: keys cached under earlier settings or for removed profiles, and unfinished writes\n',
    );
    expect(fs.readdirSync(keysDir(home))).toEqual([path.basename(otherFile)]);

    fs.writeFileSync(stale, entry('sk-test-trust-old', 'old/secret'), { mode: 0o600 });
    const all = await runBinary(['cache', 'clear', '--all'], { env: home.env() });
    expect(all.code).toBe(0);
    expect(fs.readdirSync(keysDir(home))).toEqual([]);
  });
});
