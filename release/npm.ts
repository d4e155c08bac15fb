// npm packages, shipped the way Claude Code, esbuild and biome ship native binaries: one package per
// platform holding the binary (`os`/`cpu` set, so npm installs only the matching one), and a main
// package `keybroker` that names them all as exact-version optionalDependencies and whose `bin` is a
// small launcher that runs the installed platform binary. No package has an install script.
//
//   npm run build:npm                                   dist/keybroker (this platform) → dist/npm/
//   node release/npm.ts --from dist/release --out dist/npm    every binary the release built
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

/** Release target → npm's platform words and the platform package's name. */
export const NPM_TARGETS = {
  'linux-x64': { os: 'linux', cpu: 'x64', name: '@keybroker/linux-x64' },
  'linux-arm64': { os: 'linux', cpu: 'arm64', name: '@keybroker/linux-arm64' },
  'darwin-arm64': { os: 'darwin', cpu: 'arm64', name: '@keybroker/darwin-arm64' },
  'darwin-x64': { os: 'darwin', cpu: 'x64', name: '@keybroker/darwin-x64' },
  'win-x64': { os: 'win32', cpu: 'x64', name: '@keybroker/win32-x64' },
} as const;
export type NpmTarget = keyof typeof NPM_TARGETS;

const root = path.resolve(import.meta.dirname, '..');
const REPOSITORY = 'https://github.com/keybroker/keybroker';

function binaryName(target: NpmTarget): string {
  return target.startsWith('win') ? 'keybroker.exe' : 'keybroker';
}

function common(version: string) {
  return { version, license: 'Apache-2.0', repository: { type: 'git', url: `git+${REPOSITORY}.git` }, homepage: REPOSITORY };
}

/** The platform package's folder: package.json, README and bin/keybroker[.exe], ready for `npm pack`. */
function stagePlatform(target: NpmTarget, binary: string, version: string, dir: string): void {
  const { os, cpu, name } = NPM_TARGETS[target];
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync(binary, path.join(dir, 'bin', binaryName(target)));
  fs.chmodSync(path.join(dir, 'bin', binaryName(target)), 0o755);
  const manifest = {
    name,
    ...common(version),
    description: `The keybroker ${target} binary, installed by the keybroker package`,
    os: [os],
    cpu: [cpu],
    // The Linux binaries are official Node builds: glibc, not musl.
    ...(os === 'linux' ? { libc: ['glibc'] } : {}),
    files: ['bin/'],
    preferUnplugged: true,
  };
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  fs.writeFileSync(
    path.join(dir, 'README.md'),
    `# ${name}\n\nThe \`${target}\` binary of keybroker. Install \`keybroker\` instead: \`npm install -g keybroker\`.\n`,
  );
}

/** The main package: the launcher as `bin`, every platform package at exactly this version. */
function stageMain(version: string, dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(root, 'release/npm-launcher.cjs'), path.join(dir, 'bin/keybroker.cjs'));
  fs.chmodSync(path.join(dir, 'bin/keybroker.cjs'), 0o755);
  const optionalDependencies = Object.fromEntries(Object.values(NPM_TARGETS).map(({ name }) => [name, version]));
  const manifest = {
    name: 'keybroker',
    ...common(version),
    description: "Claude Code apiKeyHelper: the developer's LLM-gateway key from the company's secrets store, cached in the OS keychain",
    bin: { keybroker: 'bin/keybroker.cjs' },
    files: ['bin/'],
    optionalDependencies,
  };
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  fs.copyFileSync(path.join(root, 'README.md'), path.join(dir, 'README.md'));
}

/** `npm pack` of a staged folder into `out`; the tarball's path. */
function pack(dir: string, out: string): string {
  const output = execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], {
    cwd: dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [{ filename }] = JSON.parse(output) as [{ filename: string }];
  return path.join(out, filename);
}

export interface NpmBuild {
  main: string;
  platforms: Partial<Record<NpmTarget, string>>;
}

/** Writes one .tgz per platform binary given and the main package's .tgz into `out`. */
export function buildNpmPackages(options: { binaries: Partial<Record<NpmTarget, string>>; version: string; out: string }): NpmBuild {
  fs.rmSync(options.out, { recursive: true, force: true });
  const stage = path.join(options.out, '.stage');
  fs.mkdirSync(stage, { recursive: true });
  const platforms: Partial<Record<NpmTarget, string>> = {};
  for (const [target, binary] of Object.entries(options.binaries) as [NpmTarget, string][]) {
    stagePlatform(target, binary, options.version, path.join(stage, target));
    platforms[target] = pack(path.join(stage, target), options.out);
  }
  stageMain(options.version, path.join(stage, 'main'));
  const main = pack(path.join(stage, 'main'), options.out);
  fs.rmSync(stage, { recursive: true, force: true });
  return { main, platforms };
}

/** This machine's target, for `npm run build:npm` from dist/keybroker. */
export function hostTarget(platform: NodeJS.Platform = process.platform, arch: string = process.arch): NpmTarget {
  const target = `${platform === 'win32' ? 'win' : platform}-${arch}`;
  if (!(target in NPM_TARGETS))
    throw new Error(`keybroker is not built for ${platform}-${arch}; the npm packages cover ${Object.keys(NPM_TARGETS).join(', ')}`);
  return target as NpmTarget;
}

function binariesIn(from: string | undefined): Partial<Record<NpmTarget, string>> {
  if (!from) {
    const target = hostTarget();
    const binary = path.join(root, 'dist', target.startsWith('win') ? 'keybroker.exe' : 'keybroker');
    if (!fs.existsSync(binary)) throw new Error(`${binary} is not there: run npm run build:binary first`);
    return { [target]: binary };
  }
  const found: Partial<Record<NpmTarget, string>> = {};
  for (const target of Object.keys(NPM_TARGETS) as NpmTarget[]) {
    const file = path.resolve(from, `keybroker-${target}${target.startsWith('win') ? '.exe' : ''}`);
    if (fs.existsSync(file)) found[target] = file;
  }
  if (Object.keys(found).length === 0) throw new Error(`no keybroker-<target> binary in ${from}: run npm run build:release first`);
  return found;
}

if (import.meta.main) {
  const flags = parseArgs({ options: { from: { type: 'string' }, out: { type: 'string' } } }).values;
  const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const built = buildNpmPackages({ binaries: binariesIn(flags.from), version, out: path.resolve(root, flags.out ?? 'dist/npm') });
  for (const file of [...Object.values(built.platforms), built.main]) console.log(path.relative(root, file));
}
