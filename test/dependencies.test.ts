// Supply chain: every runtime dependency ships in every install, so each one must be used by the
// code that goes into the binary. A package nothing imports (node-vault once was one, pulling
// axios, mustache and tv4 with it) is only attack surface.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { embeddedNodeVersion } from '../release/inspect.ts';
import { BINARY } from './support/binary.ts';

const root = path.resolve(import.meta.dirname, '..');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return /\.(ts|mts|cts|js|mjs|cjs)$/.test(entry.name) ? [full] : [];
  });
}

/** Package names the shipped code imports: `from 'x'`, `import('x')`, `require('x')`, subpaths included. */
function importedPackages(): Set<string> {
  const names = new Set<string>();
  const specifier = /(?:from\s+|import\s*\(\s*|require\s*\(\s*)['"]([^'"./][^'"]*)['"]/g;
  for (const file of ['src', 'providers', 'bin'].flatMap((folder) => sourceFiles(path.join(root, folder)))) {
    for (const match of fs.readFileSync(file, 'utf8').matchAll(specifier)) {
      const parts = match[1]!.split('/');
      names.add(match[1]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
    }
  }
  return names;
}

describe('dependencies', () => {
  it('every runtime dependency is imported by the code that ships (none rides along unused)', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const used = importedPackages();
    expect(used.has('valibot')).toBe(true);
    const unused = Object.keys(manifest.dependencies ?? {}).filter((name) => !used.has(name));
    expect(unused).toEqual([]);
  });

  it('the lockfile carries no package that only node-vault needed', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, unknown> };
    const present = ['node-vault', 'mustache', 'tv4'].filter((name) => `node_modules/${name}` in lock.packages);
    expect(present).toEqual([]);
  });
});

// The Node runtime that goes into dist/keybroker is the one npm installs for the `npm run` scripts.
// It must come from the lockfile (integrity-checked by npm ci), not from an install script that
// fetches it outside the lockfile (the `node` package's preinstall does), and it must be the
// version and bytes release/pins.json pins for the release binaries.
describe('the embedded Node runtime', () => {
  const pins = JSON.parse(fs.readFileSync(path.join(root, 'release/pins.json'), 'utf8')) as {
    node: { version: string; targets: Record<string, { package: string; integrity: string }> };
  };
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<
    string,
    Record<string, string> | undefined
  >;
  const lock = JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string; integrity?: string; hasInstallScript?: boolean }>;
  };

  it('comes from per-platform packages in the lockfile, pinned to release/pins.json, with no install script', () => {
    expect(manifest['devDependencies']?.['node']).toBeUndefined();
    expect(manifest['dependencies']?.['node']).toBeUndefined();
    for (const [target, pin] of Object.entries(pins.node.targets)) {
      expect(manifest['optionalDependencies']?.[pin.package], target).toBe(pins.node.version);
      const locked = lock.packages[`node_modules/${pin.package}`];
      expect(locked?.version, target).toBe(pins.node.version);
      expect(locked?.integrity, target).toBe(pin.integrity);
      expect(locked?.hasInstallScript, target).toBeFalsy();
    }
  });

  it('is what runs the npm scripts and what dist/keybroker embeds', () => {
    expect(process.version).toBe(`v${pins.node.version}`);
    expect(embeddedNodeVersion(fs.readFileSync(BINARY))).toBe(pins.node.version);
  });
});
