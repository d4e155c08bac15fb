// The same inputs give the same bytes: everything release/packages.ts makes around the binaries
// (archives, .deb, .rpm, .msi, SBOM, Homebrew formula, winget manifests, SHA256SUMS), made twice
// from the same stand-in binaries at different wall-clock times, compared byte for byte. The .msi
// is the one that needed work (wixl stamps the clock and a random package code). The binaries
// themselves, built twice in full, are compared by `npm run release:check` (minutes, not for the suite).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPins } from '../../release/fetch.ts';
import { writePackages, type PackageKind, PACKAGE_KINDS } from '../../release/packages.ts';

const version = '0.1.0';
const epoch = '1764547200';
let dir: string;

/** Deterministic stand-in bytes (packaging does not look inside the binaries). */
function standIn(seed: string, size = 256 * 1024): Buffer {
  const chunks: Buffer[] = [];
  let block = createHash('sha256').update(seed).digest();
  for (let length = 0; length < size; length += block.length) {
    chunks.push(block);
    block = createHash('sha256').update(block).digest();
  }
  return Buffer.concat(chunks).subarray(0, size);
}

/** One packaging run into a folder of its own; returns the folder. */
async function packageRun(name: string, options: { epoch?: string; winSeed?: string; kinds?: PackageKind[] } = {}): Promise<string> {
  const base = path.join(dir, name);
  const bin = path.join(base, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const binaries = { 'linux-x64': path.join(bin, 'keybroker-linux-x64'), 'win-x64': path.join(bin, 'keybroker-win-x64.exe') } as const;
  fs.writeFileSync(binaries['linux-x64'], standIn('linux'), { mode: 0o755 });
  fs.writeFileSync(binaries['win-x64'], standIn(options.winSeed ?? 'windows'), { mode: 0o755 });
  const out = path.join(base, 'out');
  fs.mkdirSync(out);
  const pins = readPins();
  await writePackages({
    out,
    work: path.join(base, 'work'),
    version,
    epoch: options.epoch ?? epoch,
    binaries,
    kinds: options.kinds ?? [...PACKAGE_KINDS],
    nodeVersion: pins.node.version,
    pins,
    log: () => {},
  });
  return out;
}

const files = (out: string): string[] => fs.readdirSync(out).sort();
const summary = (msi: string): string =>
  execFileSync('msiinfo', ['suminfo', msi], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
/** Waits past the 2-second resolution of the DOS times zip and cabinets keep, so a leaked clock shows. */
const clockMoves = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2_100));

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-repro-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('release packages are reproducible', () => {
  it('two runs from the same binaries, seconds apart, write the same bytes in every file', async () => {
    const first = await packageRun('first');
    await clockMoves();
    const second = await packageRun('second');
    expect(files(first)).toEqual(files(second));
    expect(files(first)).toEqual(
      expect.arrayContaining([
        `keybroker-${version}-x64.msi`,
        `keybroker_${version}_amd64.deb`,
        `keybroker-${version}-1.x86_64.rpm`,
        `keybroker-${version}-linux-x64.tar.gz`,
        `keybroker-${version}-win-x64.zip`,
        `keybroker-${version}.cdx.json`,
        'SHA256SUMS',
      ]),
    );
    const different = files(first).filter(
      (file) => !fs.readFileSync(path.join(first, file)).equals(fs.readFileSync(path.join(second, file))),
    );
    expect(different).toEqual([]);
  }, 300_000);

  it('the .msi is dated SOURCE_DATE_EPOCH and its package code follows its contents', async () => {
    const msi = `keybroker-${version}-x64.msi`;
    const one = await packageRun('msi-one', { kinds: ['msi'] });
    const laterEpoch = await packageRun('msi-epoch', { kinds: ['msi'], epoch: String(Number(epoch) + 86_400) });
    const otherBinary = await packageRun('msi-binary', { kinds: ['msi'], winSeed: 'windows, one byte on' });
    const info = summary(path.join(one, msi));
    expect(info).toMatch(/^Created: Mon Dec {2}1 00:00:00 2025$/m);
    expect(info).toMatch(/^Last saved: Mon Dec {2}1 00:00:00 2025$/m);
    expect(summary(path.join(laterEpoch, msi))).toMatch(/^Created: Tue Dec {2}2 00:00:00 2025$/m);
    const code = (text: string): string => /^Revision number \(UUID\): (\{[0-9A-F-]{36}\})$/m.exec(text)?.[1] ?? 'none';
    expect(code(info)).not.toBe('none');
    // Windows Installer takes two packages with one package code for the same package.
    expect(code(summary(path.join(otherBinary, msi)))).not.toBe(code(info));
    // What it contains is still keybroker.exe, into Program Files\keybroker.
    expect(execFileSync('msiinfo', ['export', path.join(one, msi), 'File'], { encoding: 'utf8' })).toMatch(
      /KeybrokerExeFile\tKeybrokerExe\tkeybroker\.exe\t262144\t/,
    );
  }, 300_000);

  it('wixl alone is not reproducible (why the build wraps it): two runs differ in the summary', async () => {
    const work = path.join(dir, 'wixl');
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(work, 'a.txt'), 'a');
    fs.writeFileSync(
      path.join(work, 'a.wxs'),
      `<?xml version="1.0" encoding="utf-8"?><Wix xmlns="http://schemas.microsoft.com/wix/2006/wi"><Product Id="11111111-2222-5333-A444-555555555555" Name="a" Language="1033" Version="1.0.0" Manufacturer="a" UpgradeCode="11111111-2222-5333-A444-666666666666"><Package InstallerVersion="500" Compressed="yes" /><Media Id="1" Cabinet="a.cab" EmbedCab="yes" /><Directory Id="TARGETDIR" Name="SourceDir"><Directory Id="ProgramFiles64Folder"><Directory Id="D" Name="a"><Component Id="C" Guid="11111111-2222-5333-A444-777777777777" Win64="yes"><File Id="F" Name="a.txt" Source="a.txt" KeyPath="yes" /></Component></Directory></Directory></Directory><Feature Id="M" Level="1"><ComponentRef Id="C" /></Feature></Product></Wix>`,
    );
    execFileSync('wixl', ['--arch', 'x64', '-o', 'one.msi', 'a.wxs'], { cwd: work });
    await clockMoves();
    execFileSync('wixl', ['--arch', 'x64', '-o', 'two.msi', 'a.wxs'], { cwd: work });
    const code = (file: string): string | undefined => /^Revision number \(UUID\): (.*)$/m.exec(summary(path.join(work, file)))?.[1];
    expect(code('one.msi')).not.toBe(code('two.msi'));
    expect(fs.readFileSync(path.join(work, 'one.msi')).equals(fs.readFileSync(path.join(work, 'two.msi')))).toBe(false);
  }, 60_000);
});
