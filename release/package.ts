// Re-makes the packages around binaries already in dist/release/ (or --out): what the macOS release
// job runs after re-signing the darwin binaries with a Developer ID, so that their archives, the
// Homebrew formula and SHA256SUMS carry the signed bytes.
//
//   node release/package.ts --targets darwin-arm64,darwin-x64 --packages archives,homebrew,sums
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readPins, root, sourceDateEpoch, TARGETS, type Target } from './fetch.ts';
import { PACKAGE_KINDS, type PackageKind, writePackages } from './packages.ts';

const flags = parseArgs({ options: { targets: { type: 'string' }, packages: { type: 'string' }, out: { type: 'string' } } }).values;
const out = path.resolve(root, flags.out ?? 'dist/release');
const targets = (flags.targets ? flags.targets.split(',') : [...TARGETS]) as Target[];
const kinds = (flags.packages ? flags.packages.split(',') : [...PACKAGE_KINDS]) as PackageKind[];
for (const kind of kinds) if (!PACKAGE_KINDS.includes(kind)) throw new Error(`unknown package kind ${kind}`);
const binaries: Partial<Record<Target, string>> = {};
for (const target of targets) {
  const file = path.join(out, `keybroker-${target}${target.startsWith('win') ? '.exe' : ''}`);
  if (!fs.existsSync(file)) throw new Error(`${file} is not there: run npm run build:release first`);
  binaries[target] = file;
}
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const work = `${out}.work`;
const pins = readPins();
await writePackages({
  out,
  work,
  version,
  epoch: sourceDateEpoch(),
  binaries,
  kinds,
  nodeVersion: pins.node.version,
  pins,
  log: (line) => console.log(line),
});
fs.rmSync(work, { recursive: true, force: true });
