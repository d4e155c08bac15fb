// The pinned tarballs of release/pins.json: fetched once with npm (its registry, proxy and
// mirror settings), kept in node_modules/.cache/keybroker-release, and checked against the pinned
// integrity every time they are used. A tarball that does not match is an error, never a warning.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..');
export const TARGETS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'darwin-x64', 'win-x64'] as const;
export type Target = (typeof TARGETS)[number];

export interface Pin {
  package: string;
  /** The member of the tarball that is used. */
  file: string;
  integrity: string;
}

export interface Pins {
  node: { version: string; targets: Record<Target, Pin> };
  keyring: { version: string; targets: Record<Target, Pin> };
}

export function readPins(file = path.join(root, 'release', 'pins.json')): Pins {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Pins;
}

export const cacheDir = path.join(root, 'node_modules', '.cache', 'keybroker-release');

/** `sha512-<base64>` of a file, the form of npm's dist.integrity. */
export function integrityOf(file: string): string {
  return `sha512-${createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

/** The verified tarball of `pin` at `version`: from the cache, else fetched by `npm pack`. */
export function pinnedTarball(pin: Pin, version: string): string {
  const cached = path.join(cacheDir, `${pin.package.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  if (!fs.existsSync(cached)) {
    const temp = fs.mkdtempSync(path.join(fs.mkdirSync(cacheDir, { recursive: true }) ?? cacheDir, 'fetch-'));
    try {
      const out = execFileSync('npm', ['pack', `${pin.package}@${version}`, '--pack-destination', temp, '--json', '--loglevel=error'], {
        cwd: temp,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const [{ filename }] = JSON.parse(out) as [{ filename: string }];
      fs.renameSync(path.join(temp, filename.replace(/^@/, '').replace('/', '-')), cached);
    } finally {
      fs.rmSync(temp, { recursive: true, force: true });
    }
  }
  const actual = integrityOf(cached);
  if (actual !== pin.integrity) {
    fs.rmSync(cached, { force: true });
    throw new Error(
      `${pin.package}@${version}: the tarball's integrity is ${actual}, release/pins.json pins ${pin.integrity}; refusing it (removed from the cache)`,
    );
  }
  return cached;
}

/** Extracts the pinned file of `pin` into `dir`; returns its path. */
export function pinnedFile(pin: Pin, version: string, dir: string): string {
  const tarball = pinnedTarball(pin, version);
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dir, pin.file], { stdio: 'inherit' });
  return path.join(dir, pin.file);
}

/** This machine's target name, if it is one the release builds. */
export function hostTarget(): Target | undefined {
  const name = `${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`;
  return (TARGETS as readonly string[]).includes(name) ? (name as Target) : undefined;
}

/** SOURCE_DATE_EPOCH, else the commit's time: every file of the release is dated by it. */
export function sourceDateEpoch(): string {
  if (process.env['SOURCE_DATE_EPOCH']) return process.env['SOURCE_DATE_EPOCH'];
  try {
    return (
      execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() ||
      '315532800'
    );
  } catch {
    return '315532800'; // 1980-01-01, the earliest a zip can hold
  }
}
