// `npm run release:check`: checks a full release in dist/release/ (builds it first with --build or
// when there is none), everything this Linux machine can check, and says what it could not:
//   SHA256SUMS (sha256sum -c), `file` on each binary, the same pinned Node in all five, the macOS
//   signatures (release/macho.ts), linux-x64 run here and linux-arm64 under qemu-user (--version,
//   NODE_OPTIONS ignored), the .deb installed with dpkg into a scratch root (amd64 run there), the
//   .rpm headers, the .msi's tables (msiinfo); a second full build from the same commit compared
//   byte for byte with the first (--no-rebuild skips it); and keybroker-win-x64.exe and the .msi
//   under wine 10 from a Debian 13 root (release/wine-check.ts; --no-wine skips it).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readPins, root, TARGETS } from './fetch.ts';
import { embeddedNodeVersion } from './inspect.ts';
import { verify } from './macho.ts';
import { checkUnderWine } from './wine-check.ts';

const flags = parseArgs({
  options: { build: { type: 'boolean' }, out: { type: 'string' }, 'no-wine': { type: 'boolean' }, 'no-rebuild': { type: 'boolean' } },
}).values;
const out = path.resolve(root, flags.out ?? 'dist/release');
const pins = readPins();
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
let failures = 0;
const ok = (what: string): void => console.log(`ok    ${what}`);
const fail = (what: string): void => {
  failures++;
  console.log(`FAIL  ${what}`);
};
const skip = (what: string): void => console.log(`skip  ${what}`);
const check = (what: string, pass: boolean, detail = ''): void => (pass ? ok(what) : fail(`${what}${detail ? `: ${detail}` : ''}`));
const sh = (command: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd = out) =>
  spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000 });

if (flags.build || !fs.existsSync(path.join(out, 'SHA256SUMS')))
  execFileSync(process.execPath, ['release/build.ts', '--out', out], { cwd: root, stdio: 'inherit' });

const expected = [
  ...TARGETS.map((target) => `keybroker-${target}${target.startsWith('win') ? '.exe' : ''}`),
  ...TARGETS.filter((t) => !t.startsWith('win')).map((target) => `keybroker-${version}-${target}.tar.gz`),
  `keybroker-${version}-win-x64.zip`,
  `keybroker_${version}_amd64.deb`,
  `keybroker_${version}_arm64.deb`,
  `keybroker-${version}-1.x86_64.rpm`,
  `keybroker-${version}-1.aarch64.rpm`,
  `keybroker-${version}-x64.msi`,
  `keybroker-${version}.cdx.json`,
  'keybroker.rb',
  'Keybroker.Keybroker.yaml',
  'Keybroker.Keybroker.installer.yaml',
  'Keybroker.Keybroker.locale.en-US.yaml',
  'SHA256SUMS',
];
for (const file of expected) check(`${file} is there`, fs.existsSync(path.join(out, file)));
const sums = sh('sha256sum', ['-c', 'SHA256SUMS']);
check('sha256sum -c SHA256SUMS', sums.status === 0, sums.stdout + sums.stderr);
const listed = fs
  .readFileSync(path.join(out, 'SHA256SUMS'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => line.slice(66));
check(
  'SHA256SUMS covers every other file',
  JSON.stringify(listed.sort()) ===
    JSON.stringify(
      fs
        .readdirSync(out)
        .filter((f) => f !== 'SHA256SUMS')
        .sort(),
    ),
);

const FILE_SAYS: Record<string, RegExp> = {
  'linux-x64': /ELF 64-bit LSB (pie )?executable, x86-64/,
  'linux-arm64': /ELF 64-bit LSB (pie )?executable, ARM aarch64/,
  'darwin-arm64': /Mach-O 64-bit arm64 executable/,
  'darwin-x64': /Mach-O 64-bit x86_64 executable/,
  'win-x64': /PE32\+ executable \(console\) x86-64.*MS Windows/,
};
for (const target of TARGETS) {
  const binary = path.join(out, `keybroker-${target}${target.startsWith('win') ? '.exe' : ''}`);
  if (!fs.existsSync(binary)) continue;
  const said = sh('file', ['-b', binary]).stdout.trim();
  check(`file: keybroker-${target}: ${said.slice(0, 70)}`, FILE_SAYS[target]!.test(said));
  const bytes = fs.readFileSync(binary);
  const node = embeddedNodeVersion(bytes);
  check(`keybroker-${target} embeds Node ${node}`, node === pins.node.version);
  if (target.startsWith('darwin')) {
    const report = verify(bytes);
    check(`keybroker-${target}: ${report.kind} signature, cdhash ${report.cdhash}`, report.valid, report.problems.join('; '));
  }
}

const marker = path.join(os.tmpdir(), `kb-check-preload-${process.pid}`);
const preload = `${marker}.cjs`;
fs.writeFileSync(preload, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`);
const runs: [string, string[]][] = [
  ['linux-x64', [path.join(out, 'keybroker-linux-x64')]],
  ['linux-arm64 (qemu-user)', ['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', path.join(out, 'keybroker-linux-arm64')]],
];
for (const [name, [command, ...args]] of runs) {
  const result = sh(command!, [...args, '--version'], { PATH: process.env['PATH'], NODE_OPTIONS: `--require ${preload}` });
  check(
    `${name}: --version with NODE_OPTIONS=--require …: "${result.stdout.trim()}", preload not run`,
    result.status === 0 && result.stdout === `keybroker ${version}\n` && !fs.existsSync(marker),
  );
  fs.rmSync(marker, { force: true });
}
fs.rmSync(preload, { force: true });

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-dpkg-'));
try {
  for (const dir of ['var/lib/dpkg/updates', 'var/lib/dpkg/info']) fs.mkdirSync(path.join(scratch, dir), { recursive: true });
  fs.writeFileSync(path.join(scratch, 'var/lib/dpkg/status'), '');
  const install = sh('dpkg', [
    `--root=${scratch}`,
    '--force-depends',
    '--force-not-root',
    '-i',
    path.join(out, `keybroker_${version}_amd64.deb`),
  ]);
  const run = sh(path.join(scratch, 'usr/bin/keybroker'), ['--version']);
  check(
    `dpkg -i keybroker_${version}_amd64.deb (scratch root), then its /usr/bin/keybroker --version: "${run.stdout.trim()}"`,
    install.status === 0 && run.stdout === `keybroker ${version}\n`,
    install.stderr,
  );
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
for (const arch of ['x86_64', 'aarch64']) {
  const rpm = sh('rpm', ['-qp', '--queryformat', '%{NAME} %{VERSION} %{ARCH}', `keybroker-${version}-1.${arch}.rpm`]);
  const files = sh('rpm', ['-qlp', `keybroker-${version}-1.${arch}.rpm`]);
  check(
    `rpm -qp keybroker-${version}-1.${arch}.rpm: ${rpm.stdout.trim()}: ${files.stdout.trim()}`,
    rpm.stdout.trim() === `keybroker ${version} ${arch}` && files.stdout.trim() === '/usr/bin/keybroker',
    rpm.stderr,
  );
}
const tables = sh('msiinfo', ['export', `keybroker-${version}-x64.msi`, 'File']);
check(`msiinfo: the .msi installs keybroker.exe`, tables.status === 0 && tables.stdout.includes('keybroker.exe'), tables.stderr);

// The same commit builds the same bytes: a second full build, every file compared with the first.
if (flags['no-rebuild']) {
  skip('a second build compared byte for byte (--no-rebuild): nothing here shows that this commit builds the same bytes again');
} else {
  const again = `${out}.again`;
  try {
    const started = Date.now();
    // Dated like the first build (every file of it carries SOURCE_DATE_EPOCH as its mtime), so a later
    // commit that changes nothing built (a README edit) still compares equal.
    const epoch = process.env['SOURCE_DATE_EPOCH'] ?? String(Math.round(fs.statSync(path.join(out, 'SHA256SUMS')).mtimeMs / 1000));
    execFileSync(process.execPath, ['release/build.ts', '--out', again], {
      cwd: root,
      env: { ...process.env, SOURCE_DATE_EPOCH: epoch },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const files = fs.readdirSync(out).sort();
    const different = files.filter(
      (file) =>
        !fs.existsSync(path.join(again, file)) || !fs.readFileSync(path.join(out, file)).equals(fs.readFileSync(path.join(again, file))),
    );
    const extra = fs.readdirSync(again).filter((file) => !files.includes(file));
    check(
      `a second build (${((Date.now() - started) / 1000).toFixed(0)} s) is byte-identical: ${files.length - different.length} of ${files.length} files`,
      different.length === 0 && extra.length === 0,
      `different: ${[...different, ...extra].join(', ')} (was ${path.relative(root, out)} built from this code? --build rebuilds it)`,
    );
  } catch (error) {
    fail(`a second build: ${(error as Error).message}`);
  } finally {
    fs.rmSync(again, { recursive: true, force: true });
    fs.rmSync(`${again}.work`, { recursive: true, force: true });
  }
}

if (flags['no-wine']) {
  skip(
    'keybroker-win-x64.exe and the .msi under wine (--no-wine): the Windows binary, its Credential Manager cache and its installer are then not run at all before release',
  );
} else {
  await checkUnderWine(out, version, { check });
}
skip('running the macOS binaries and notarization: no Mac here (.github/workflows/release.yml does both)');
console.log(failures ? `${failures} check(s) failed` : 'all checks passed');
process.exit(failures ? 1 : 0);
