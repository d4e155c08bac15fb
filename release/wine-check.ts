// keybroker-win-x64.exe and its .msi, run under wine >= 10 (release/wine.ts: Debian 13's wine in a
// root of its own), as `npm run release:check`'s last part. Each step prints ok/FAIL:
//   --version with NODE_OPTIONS=--require=… (ignored: the same preload does run in the plain
//   node.exe of the pinned Node, so the check can fail); `get` against moto on the host's 127.0.0.1
//   with the file cache, then with the Windows Credential Manager (cache.backend "keychain", through
//   the @napi-rs/keyring addon); `status`; the store stopped: both caches still serve the key, and a
//   profile with no cache exits 7 (store unreachable); then `msiexec /i … /qn` and the installed
//   C:\Program Files\keybroker\keybroker.exe --version. A fresh Windows prefix for every run.
//
//   node release/wine-check.ts [--out dist/release]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { pinnedFile, readPins, root } from './fetch.ts';
import { cannotRunWine, ensureWineRoot, readyWine, runUnderWine, wineRoot, type WineRun } from './wine.ts';
import { AWS_TEST_CREDENTIALS, startMoto } from '../test/support/moto.ts';

export interface Reporter {
  check(what: string, pass: boolean, detail?: string): void;
}

/** The path Windows programs under wine see for a host path (wine's Z: drive is the root's /). */
export const windowsPath = (file: string): string => `Z:${path.resolve(file).replace(/\//g, '\\')}`;

/** What a failed run said, for a FAIL line: exit code and the end of stderr (never stdout: it may hold the key). */
const said = (run: WineRun): string =>
  `exit ${run.code ?? run.signal}${run.timedOut ? ' (timed out)' : ''}, ${(run.ms / 1000).toFixed(1)} s, stderr: ${JSON.stringify(run.stderr.trim().slice(-400))}`;
const fingerprint = (key: string): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

export async function checkUnderWine(out: string, version: string, report: Reporter): Promise<void> {
  const { check } = report;
  const why = cannotRunWine();
  if (why) return check('wine >= 10 for keybroker-win-x64.exe', false, why);
  const cached = readyWine();
  const started = Date.now();
  let wine: string;
  try {
    wine = ensureWineRoot();
  } catch (error) {
    return check('wine root (Debian 13, debootstrap)', false, (error as Error).message);
  }
  check(`wine root ${wineRoot()}: ${wine}${cached ? ' (cached)' : ` (made in ${((Date.now() - started) / 1000).toFixed(0)} s)`}`, true);

  const exe = path.join(out, 'keybroker-win-x64.exe');
  const msi = path.join(out, `keybroker-${version}-x64.msi`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-wine-check-'));
  // A fresh prefix (Windows' C: drive, registry and Credential Manager) inside the bound work folder.
  const prefix = path.join(work, 'prefix');
  const wineRun = (program: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<WineRun> =>
    runUnderWine(program, args, { binds: [out, work], prefix, env });
  let moto: Awaited<ReturnType<typeof startMoto>> | undefined;
  try {
    const first = await wineRun(exe, ['--version']);
    check(
      `wine: fresh prefix, keybroker-win-x64.exe --version: "${first.stdout.trim()}" (${(first.ms / 1000).toFixed(1)} s with the prefix's creation)`,
      first.code === 0 && first.stdout === `keybroker ${version}\n`,
      said(first),
    );

    // NODE_OPTIONS: the preload runs in the plain node.exe of the same pinned Node, not in keybroker.
    const marker = path.join(work, 'preloaded');
    const preload = path.join(work, 'preload.cjs');
    fs.writeFileSync(preload, `require('fs').writeFileSync(${JSON.stringify(windowsPath(marker))}, 'ran')`);
    const nodeOptions = { NODE_OPTIONS: `--require=${windowsPath(preload)}` };
    const pins = readPins();
    const plainNode = pinnedFile(pins.node.targets['win-x64'], pins.node.version, path.join(work, 'node'));
    const control = await wineRun(plainNode, ['-e', '0'], nodeOptions);
    const controlRan = fs.existsSync(marker);
    fs.rmSync(marker, { force: true });
    const versioned = await wineRun(exe, ['--version'], nodeOptions);
    check(
      `wine: --version with NODE_OPTIONS=--require=…: "${versioned.stdout.trim()}", preload not run (it ran in the plain node.exe ${pins.node.version}: ${controlRan})`,
      controlRan && control.code === 0 && versioned.code === 0 && versioned.stdout === `keybroker ${version}\n` && !fs.existsSync(marker),
      said(versioned),
    );

    // A store on the host's 127.0.0.1 (the root shares the host's network), three profiles over it.
    moto = await startMoto();
    const key = `sk-test-wine-${fingerprint(String(Date.now()))}-0123456789`;
    const value = path.join(work, 'value.json');
    fs.writeFileSync(value, JSON.stringify({ api_key: key }), { mode: 0o600 });
    await moto.aws(['secretsmanager', 'create-secret', '--name', 'release/wine', '--secret-string', `file://${value}`]);
    fs.rmSync(value);
    const store = { type: 'aws', region: 'us-east-1', endpoint: moto.endpoint };
    // refreshAfter 1s: once the store is down, the cached keys are due for a refresh, so `get` does
    // try the store and serves the cache only because it cannot reach it (with a warning).
    const profile = (backend: string) => ({ store, secret: 'release/wine', user: 'os', cache: { backend, refreshAfter: '1s' } });
    const config = path.join(work, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify(
        { defaultProfile: 'file', profiles: { file: profile('file'), keychain: profile('keychain'), nocache: profile('none') } },
        null,
        2,
      ),
    );
    const env = {
      ...AWS_TEST_CREDENTIALS,
      AWS_CONFIG_FILE: windowsPath(path.join(work, 'no-aws-config')),
      AWS_SHARED_CREDENTIALS_FILE: windowsPath(path.join(work, 'no-aws-credentials')),
      KEYBROKER_CONFIG: windowsPath(config),
    };
    const get = (profileName: string) => wineRun(exe, ['get', '--profile', profileName], env);
    // Under drive_c only: the prefix's dosdevices/z: is a link to / (readdir's recursion follows it).
    const driveC = path.join(prefix, 'drive_c');
    const cacheFiles = (): string[] =>
      (fs.readdirSync(driveC, { recursive: true }) as string[]).filter(
        (name) => /keybroker[\\/]cache[\\/]/i.test(name) && fs.lstatSync(path.join(driveC, name)).isFile(),
      );

    const fileGet = await get('file');
    check(
      `wine: get (file cache) from moto at ${moto.endpoint}: the key (${fingerprint(key)}), ${(fileGet.ms / 1000).toFixed(1)} s, a cache file in the prefix: ${cacheFiles().length > 0}`,
      fileGet.code === 0 && fileGet.stdout === key && cacheFiles().length > 0,
      said(fileGet),
    );
    const keychainGet = await get('keychain');
    // Wine keeps the Credential Manager in the prefix's registry (user.reg, written when wineserver exits).
    const userReg = fs.readFileSync(path.join(prefix, 'user.reg'), 'utf8');
    const credentials = userReg.split(/\n(?=\[)/).filter((section) => /^\[Software\\\\Wine\\\\Credential Manager\\\\/i.test(section));
    const ours = credentials.filter((section) => /keybroker/i.test(section));
    check(
      `wine: get (Windows Credential Manager) from moto: the key, ${(keychainGet.ms / 1000).toFixed(1)} s; the registry's Credential Manager holds ${ours.length} keybroker entr${ours.length === 1 ? 'y' : 'ies'} (${ours.map((section) => section.split('\n')[0]!.replace(/\s+\d+$/, '')).join(', ')}), the key not in plain text`,
      keychainGet.code === 0 && keychainGet.stdout === key && ours.length > 0 && !userReg.includes(key),
      said(keychainGet),
    );
    const status = await wineRun(exe, ['status', '--profile', 'keychain', '--json'], env);
    let cachedFingerprint: unknown;
    try {
      cachedFingerprint = (JSON.parse(status.stdout) as { cached?: { fingerprint?: unknown } }).cached?.fingerprint;
    } catch {}
    check(
      `wine: status --json (Credential Manager): cached fingerprint ${String(cachedFingerprint)}, no key in its output`,
      status.code === 0 && cachedFingerprint === `sha256:${fingerprint(key)}` && !status.stdout.includes(key),
      said(status),
    );

    await moto.stop();
    moto = undefined;
    const storeRead = Date.now() - keychainGet.ms - status.ms;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, storeRead + 1500 - Date.now())));
    for (const name of ['file', 'keychain']) {
      const down = await get(name);
      const warning = down.stderr.trim();
      check(
        `wine: store down, get (${name === 'file' ? 'file cache' : 'Credential Manager'}) served from the cache with a warning: ${JSON.stringify(warning.slice(0, 160))}`,
        down.code === 0 && down.stdout === key && /cannot reach|unreachable/i.test(warning) && !warning.includes(key),
        said(down),
      );
    }
    const none = await get('nocache');
    check(
      `wine: store down, get with no cache: exit ${none.code} (7: store unreachable) in ${(none.ms / 1000).toFixed(1)} s, stderr: ${JSON.stringify(none.stderr.trim().slice(0, 160))}`,
      none.code === 7 && none.stdout === '' && !none.stderr.includes(key),
      said(none),
    );

    const install = await wineRun('msiexec', ['/i', windowsPath(msi), '/qn']);
    const installed = await wineRun('C:\\Program Files\\keybroker\\keybroker.exe', ['--version']);
    const onDisk = fs.existsSync(path.join(prefix, 'drive_c', 'Program Files', 'keybroker', 'keybroker.exe'));
    check(
      `wine: msiexec /i ${path.basename(msi)} /qn (exit ${install.code}), then C:\\Program Files\\keybroker\\keybroker.exe --version: "${installed.stdout.trim()}"`,
      install.code === 0 && onDisk && installed.code === 0 && installed.stdout === `keybroker ${version}\n`,
      `${said(install)}; installed: ${said(installed)}`,
    );
  } catch (error) {
    check('wine: the check itself', false, (error as Error).stack ?? String(error));
  } finally {
    await moto?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const flags = parseArgs({ options: { out: { type: 'string' } } }).values;
  const out = path.resolve(root, flags.out ?? 'dist/release');
  const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  let failures = 0;
  await checkUnderWine(out, version, {
    check(what, pass, detail) {
      if (!pass) failures++;
      console.log(pass ? `ok    ${what}` : `FAIL  ${what}${detail ? `: ${detail}` : ''}`);
    },
  });
  process.exit(failures ? 1 : 0);
}
