// The release build, checked on what it builds for the platforms this machine can run or read:
// linux-arm64 (run under qemu-user: --version, a `get` against moto with the file cache, NODE_OPTIONS
// ignored; its .deb installed with dpkg) and darwin-arm64 (its ad-hoc signature verified). One
// build, reused by every test here. The full build (all five targets, every package) is
// `npm run build:release`, checked by `npm run release:check`.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPins, root } from '../../release/fetch.ts';
import { embeddedNodeVersion } from '../../release/inspect.ts';
import { verify } from '../../release/macho.ts';
import { runBinary, type RunResult } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { startMoto, type Moto } from '../support/moto.ts';

const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const pins = readPins();
let out: string;
let moto: Moto;
let home: TestHome;

const arm64 = (): string => path.join(out, 'keybroker-linux-arm64');
const underQemu = (binary: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<RunResult> =>
  runBinary(['-L', '/usr/aarch64-linux-gnu', binary, ...args], { command: 'qemu-aarch64', env, timeoutMs });

// KEYBROKER_RELEASE_DIR: check a release already built (npm run build:release) instead of building.
const prebuilt = process.env['KEYBROKER_RELEASE_DIR'] ? path.resolve(root, process.env['KEYBROKER_RELEASE_DIR']) : undefined;

beforeAll(async () => {
  if (prebuilt) {
    out = prebuilt;
  } else {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-release-'));
    // A clean output folder of its own: never dist/, which the other tests' binary lives in.
    execFileSync(
      process.execPath,
      ['release/build.ts', '--targets', 'linux-arm64,darwin-arm64', '--packages', 'archives,deb,sums', '--out', out],
      { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
    );
  }
  moto = await startMoto();
  home = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'file' } }));
}, 1_800_000);

afterAll(async () => {
  await moto?.stop();
  home?.remove();
  if (out && !prebuilt) {
    fs.rmSync(out, { recursive: true, force: true });
    fs.rmSync(`${out}.work`, { recursive: true, force: true });
  }
});

describe('npm run build:release (linux-arm64 and darwin-arm64)', () => {
  it('writes the binaries, archives, the .deb and a SHA256SUMS that sha256sum -c accepts', () => {
    const files = fs.readdirSync(out).sort();
    expect(files).toEqual(
      expect.arrayContaining([
        'SHA256SUMS',
        `keybroker-${version}-darwin-arm64.tar.gz`,
        `keybroker-${version}-linux-arm64.tar.gz`,
        'keybroker-darwin-arm64',
        'keybroker-linux-arm64',
        `keybroker_${version}_arm64.deb`,
      ]),
    );
    if (!prebuilt) expect(files).toHaveLength(6);
    const sums = fs.readFileSync(path.join(out, 'SHA256SUMS'), 'utf8');
    expect(sums.trim().split('\n')).toHaveLength(files.length - 1);
    expect(execFileSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: out, encoding: 'utf8' })).not.toMatch(/FAILED/);
    // A changed byte is caught: the file really is checked.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-sums-'));
    try {
      fs.writeFileSync(
        path.join(copy, 'SHA256SUMS'),
        `${sums
          .split('\n')
          .filter((line) => line.endsWith('.deb'))
          .join('\n')}\n`,
      );
      const deb = fs.readFileSync(path.join(out, `keybroker_${version}_arm64.deb`));
      deb[deb.length - 1]! ^= 1;
      fs.writeFileSync(path.join(copy, `keybroker_${version}_arm64.deb`), deb);
      expect(spawnSync('sha256sum', ['-c', 'SHA256SUMS'], { cwd: copy }).status).not.toBe(0);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it("`file` names each binary's platform, and both embed the pinned Node", () => {
    expect(execFileSync('file', ['-b', arm64()], { encoding: 'utf8' })).toMatch(/^ELF 64-bit LSB (pie )?executable, ARM aarch64/);
    expect(execFileSync('file', ['-b', path.join(out, 'keybroker-darwin-arm64')], { encoding: 'utf8' })).toMatch(
      /^Mach-O 64-bit arm64 executable/,
    );
    for (const binary of ['keybroker-linux-arm64', 'keybroker-darwin-arm64']) {
      expect(embeddedNodeVersion(fs.readFileSync(path.join(out, binary))), binary).toBe(pins.node.version);
    }
  });

  it('the darwin-arm64 binary carries a valid ad-hoc signature over every page', () => {
    const binary = fs.readFileSync(path.join(out, 'keybroker-darwin-arm64'));
    expect(verify(binary)).toMatchObject({ valid: true, kind: 'adhoc', identifier: 'keybroker', problems: [] });
  });

  it('keybroker-linux-arm64 runs under qemu-user: --version', async () => {
    const result = await underQemu(arm64(), ['--version'], { PATH: process.env['PATH'] });
    expect(result).toMatchObject({ code: 0, stdout: `keybroker ${version}\n`, stderr: '' });
  });

  it('keybroker-linux-arm64 ignores NODE_OPTIONS (no code runs before keybroker)', async () => {
    const marker = path.join(home.dir, 'preloaded');
    const preload = path.join(home.dir, 'preload.cjs');
    fs.writeFileSync(preload, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`);
    // The same preload does run in a plain Node: the check can fail.
    execFileSync(process.execPath, ['-e', '0'], { env: { ...process.env, NODE_OPTIONS: `--require ${preload}` } });
    expect(fs.existsSync(marker)).toBe(true);
    fs.rmSync(marker);
    const result = await underQemu(arm64(), ['--version'], { PATH: process.env['PATH'], NODE_OPTIONS: `--require ${preload}` });
    expect(result).toMatchObject({ code: 0, stdout: `keybroker ${version}\n` });
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('keybroker-linux-arm64 gets a key from moto and then serves it from the file cache', async () => {
    const key = 'sk-test-release-arm64-0123456789';
    const file = path.join(home.dir, 'value');
    fs.writeFileSync(file, JSON.stringify({ api_key: key }));
    await moto.aws(['secretsmanager', 'create-secret', '--name', 'release/arm64', '--secret-string', `file://${file}`]);
    const env = home.env({ KEYBROKER_SECRET: 'release/arm64' });
    const first = await underQemu(arm64(), ['get'], env);
    expect(first).toMatchObject({ code: 0, stdout: key, stderr: '' });
    expect(home.files().some((name) => name.includes(path.join('.cache', 'keybroker', 'keys')))).toBe(true);
    // The store gone: only the file cache can answer.
    await moto.stop();
    const second = await underQemu(arm64(), ['get'], env);
    expect(second).toMatchObject({ code: 0, stdout: key });
  });

  it('the arm64 .deb installs with dpkg, and the installed keybroker --version works', async () => {
    const rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-dpkg-'));
    try {
      // A root of its own (its own dpkg database), so the test does not install into this machine.
      fs.mkdirSync(path.join(rootDir, 'var', 'lib', 'dpkg', 'updates'), { recursive: true });
      fs.mkdirSync(path.join(rootDir, 'var', 'lib', 'dpkg', 'info'), { recursive: true });
      fs.writeFileSync(path.join(rootDir, 'var', 'lib', 'dpkg', 'status'), '');
      // The scratch root has no libc6 etc. to satisfy Depends (checked just below instead).
      execFileSync(
        'dpkg',
        [
          `--root=${rootDir}`,
          '--force-architecture',
          '--force-depends',
          '--force-not-root',
          '-i',
          path.join(out, `keybroker_${version}_arm64.deb`),
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      const status = execFileSync(
        'dpkg-query',
        [
          `--admindir=${path.join(rootDir, 'var', 'lib', 'dpkg')}`,
          '-W',
          '-f',
          '${Package} ${Version} ${Architecture} ${Status}',
          'keybroker',
        ],
        { encoding: 'utf8' },
      );
      expect(status).toBe(`keybroker ${version} arm64 install ok installed`);
      // What the binary links beyond libc (readelf: libatomic.so.1, which minimal images lack) is declared.
      expect(execFileSync('dpkg-deb', ['-f', path.join(out, `keybroker_${version}_arm64.deb`), 'Depends'], { encoding: 'utf8' })).toMatch(
        /libatomic1/,
      );
      const installed = path.join(rootDir, 'usr', 'bin', 'keybroker');
      expect(fs.statSync(installed).mode & 0o777).toBe(0o755);
      const result = await underQemu(installed, ['--version'], { PATH: process.env['PATH'] });
      expect(result).toMatchObject({ code: 0, stdout: `keybroker ${version}\n` });
    } finally {
      fs.rmSync(rootDir, { recursive: true, force: true });
    }
  });
});
