// `npm run build:release`: keybroker for every platform, into dist/release/, from the Node and
// keychain-addon tarballs pinned in release/pins.json (checked by integrity before use). For each
// target: the bundles (bin/build.ts --bundle-only, with that target's addon), then the pinned Node
// of this machine's target (the same version as every target's) builds the single executable from
// the target's pinned Node with `--build-sea` (V8 code caches only for the target this machine is, made reproducibly);
// Linux binaries are stripped, Windows' has Node's Authenticode signature removed and is optionally
// re-signed, macOS' are ad-hoc signed and verified (release/macho.ts). Then the archives,
// packages, SBOM, Homebrew formula, winget manifest and SHA256SUMS (release/packages.ts).
//
//   node release/build.ts [--targets linux-x64,darwin-arm64] [--packages deb,rpm,...] [--out DIR]
//
// SOURCE_DATE_EPOCH (default: the commit's time) dates every file, so a commit builds the same bytes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { sign, verify } from './macho.ts';
import { embeddedNodeVersion } from './inspect.ts';
import { hostTarget, pinnedFile, readPins, root, sourceDateEpoch, TARGETS, type Target } from './fetch.ts';
import { PACKAGE_KINDS, type PackageKind, writePackages } from './packages.ts';
import { TRAINING_FLAGS } from '../src/loader/wrap.ts';

const started = Date.now();
const flags = parseArgs({
  options: { targets: { type: 'string' }, packages: { type: 'string' }, out: { type: 'string' }, 'keep-work': { type: 'boolean' } },
}).values;
const targets = (flags.targets ? flags.targets.split(',') : [...TARGETS]) as Target[];
for (const target of targets) if (!TARGETS.includes(target)) throw new Error(`unknown target ${target} (known: ${TARGETS.join(', ')})`);
const kinds = (flags.packages !== undefined ? flags.packages.split(',').filter(Boolean) : [...PACKAGE_KINDS]) as PackageKind[];
for (const kind of kinds)
  if (!PACKAGE_KINDS.includes(kind)) throw new Error(`unknown package kind ${kind} (known: ${PACKAGE_KINDS.join(', ')})`);
const out = path.resolve(root, flags.out ?? 'dist/release');
const work = `${out}.work`;
const pins = readPins();
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const epoch = sourceDateEpoch();
const log = (line: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}`);

const run = (command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string =>
  execFileSync(command, args, {
    cwd: options.cwd ?? root,
    env: options.env ?? process.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });

fs.rmSync(out, { recursive: true, force: true });
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(out, { recursive: true });

// The Node that makes every blob: the pinned one for this machine, the same version as the targets'.
const host = hostTarget();
if (!host)
  throw new Error(
    `this machine (${process.platform}-${process.arch}) is none of the release targets, so no pinned Node can make the blobs here`,
  );
const hostNode = pinnedFile(pins.node.targets[host], pins.node.version, path.join(work, 'host-node'));
const hostVersion = run(hostNode, ['--version']).trim();
if (hostVersion !== `v${pins.node.version}`) throw new Error(`the pinned host Node says ${hostVersion}, not v${pins.node.version}`);
log(`blobs made by the pinned Node ${hostVersion} (${host}); targets ${targets.join(', ')}`);

const seaConfig = JSON.parse(fs.readFileSync(path.join(root, 'pkg.config.json'), 'utf8')) as Record<string, unknown> & {
  main: string;
  output: string;
  assets: Record<string, string>;
};
const binaries: Partial<Record<Target, string>> = {};
/** The asset bin/boot.ts runs: the program itself. */
const PROGRAM_ASSET = 'keybroker.cjs';
const postject = path.join(path.dirname(createRequire(import.meta.url).resolve('postject/package.json')), 'dist', 'cli.js');

for (const target of targets) {
  const dir = path.join(work, target);
  const bundle = path.join(dir, 'bundle');
  const addon = pinnedFile(pins.keyring.targets[target], pins.keyring.version, path.join(dir, 'addon'));
  run(process.execPath, ['bin/build.ts', '--out', bundle, '--keyring', addon, '--bundle-only']);
  const inBundle = (file: string): string => path.join(bundle, path.relative('dist', file));
  // Code caches (the program's, trained; each chunk's) only where this machine's Node is the target's.
  const withCodeCaches = target === host;
  const assets: Record<string, string> = {};
  for (const [asset, file] of Object.entries(seaConfig.assets)) assets[asset] = inBundle(file);
  if (withCodeCaches) {
    // The program's cache is made by running a warm get with it (bin/train-code-cache.ts), each chunk's by running its top level.
    // Named relative to the bundle: a chunk's cache records the path it was given (measured), and must
    // not depend on the folder the release is built in.
    const chunks = Object.entries(assets)
      .filter(([asset, file]) => file.endsWith('.cjs') && asset !== PROGRAM_ASSET)
      .map(([, file]) => path.relative(bundle, file));
    run(hostNode, [...TRAINING_FLAGS, path.join(root, 'bin', 'chunk-code-cache.ts'), ...chunks], { cwd: bundle });
    run(hostNode, [
      ...TRAINING_FLAGS,
      path.join(root, 'bin', 'train-code-cache.ts'),
      assets[PROGRAM_ASSET]!,
      assets[PROGRAM_ASSET]!.replace(/\.cjs$/, '.cache'),
    ]);
    for (const [asset, file] of Object.entries(assets))
      if (asset.endsWith('.cjs')) assets[asset.replace(/\.cjs$/, '.cache')] = file.replace(/\.cjs$/, '.cache');
  }
  const node = pinnedFile(pins.node.targets[target], pins.node.version, path.join(dir, 'node'));
  // The Node the SEA is made of: for Windows without Node's Authenticode signature (invalid once the
  // blob is in; osslsigncode re-signs below), for Linux stripped (94 -> 86 MiB; llvm-strip knows arm64).
  let executable = node;
  if (target === 'win-x64') {
    executable = path.join(dir, 'node-unsigned.exe');
    run('osslsigncode', ['remove-signature', '-in', node, '-out', executable]);
  } else if (target.startsWith('linux')) {
    executable = path.join(dir, 'node-stripped');
    fs.copyFileSync(node, executable);
    run(target === 'linux-x64' ? 'strip' : 'llvm-strip', [executable]);
  }
  const exe = path.join(dir, target.startsWith('win') ? 'keybroker.exe' : 'keybroker');
  const config = path.join(dir, 'sea-config.json');
  // `main` relative to the folder the builder runs in: the blob records main's path as given, and an
  // absolute one (this clone's folder) would make every clone build different bytes.
  if (target === 'win-x64') {
    // PE: blob, then postject, the way measured under wine (FIELD-NOTES).
    const blob = path.join(dir, 'keybroker.blob');
    fs.writeFileSync(
      config,
      JSON.stringify(
        { ...seaConfig, main: path.relative(dir, inBundle(seaConfig.main)), output: blob, assets, useSnapshot: false },
        null,
        2,
      ),
    );
    run(hostNode, ['--experimental-sea-config', config], { cwd: dir });
    fs.copyFileSync(executable, exe);
    run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2']);
  } else {
    // ELF and Mach-O: Node's own builder (26), blob and injection in one step, several times faster
    // than postject on a Mach-O; it drops Apple's signature, which would no longer match (signed below).
    fs.writeFileSync(
      config,
      JSON.stringify(
        { ...seaConfig, main: path.relative(dir, inBundle(seaConfig.main)), executable, output: exe, assets, useSnapshot: false },
        null,
        2,
      ),
    );
    run(hostNode, ['--build-sea', config], { cwd: dir });
  }
  fs.chmodSync(exe, 0o755);
  if (target.startsWith('darwin')) {
    // No arm64 Mac runs an unsigned binary: an ad-hoc signature over every page, checked at once.
    fs.writeFileSync(exe, sign(fs.readFileSync(exe), 'keybroker'));
    const report = verify(fs.readFileSync(exe));
    if (!report.valid || report.kind !== 'adhoc')
      throw new Error(`${target}: the ad-hoc signature does not verify: ${report.problems.join('; ')}`);
    log(`${target}: ad-hoc signature verified (cdhash ${report.cdhash})`);
  }
  if (target === 'win-x64' && process.env['KEYBROKER_WINDOWS_PFX']) {
    // Authenticode with the company's certificate: osslsigncode, password from the environment.
    const signed = `${exe}.signed`;
    const timestamp = process.env['KEYBROKER_WINDOWS_TIMESTAMP_URL'];
    run('osslsigncode', [
      'sign',
      '-pkcs12',
      process.env['KEYBROKER_WINDOWS_PFX'],
      '-readpass',
      process.env['KEYBROKER_WINDOWS_PFX_PASSWORD_FILE'] ?? '/dev/null',
      '-h',
      'sha256',
      '-n',
      'keybroker',
      ...(timestamp ? ['-ts', timestamp] : []),
      '-in',
      exe,
      '-out',
      signed,
    ]);
    fs.renameSync(signed, exe);
    log(`${target}: Authenticode-signed with ${path.basename(process.env['KEYBROKER_WINDOWS_PFX'])}`);
  }
  const embedded = embeddedNodeVersion(fs.readFileSync(exe));
  if (embedded !== pins.node.version) throw new Error(`${target}: the binary embeds Node ${embedded}, not the pinned ${pins.node.version}`);
  const final = path.join(out, `keybroker-${target}${target.startsWith('win') ? '.exe' : ''}`);
  fs.copyFileSync(exe, final);
  fs.chmodSync(final, 0o755);
  binaries[target] = final;
  log(`${path.relative(root, final)}: Node ${embedded}, ${(fs.statSync(final).size / 2 ** 20).toFixed(0)} MiB`);
}

await writePackages({ out, work, version, epoch, binaries, kinds, nodeVersion: pins.node.version, pins, log });
if (!flags['keep-work']) fs.rmSync(work, { recursive: true, force: true });
log(`done: ${path.relative(root, out)}`);
