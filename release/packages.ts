// Everything around the binaries in dist/release/: archives, .deb, .rpm, .msi, the CycloneDX SBOM,
// a Homebrew formula and a winget manifest carrying the SHA-256s, and SHA256SUMS over every file.
// Every file is dated SOURCE_DATE_EPOCH and archived in a fixed order with fixed owners, so the same
// commit gives the same bytes (the .msi too: see msi()).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { root, type Pins, type Target } from './fetch.ts';

export const PACKAGE_KINDS = ['archives', 'deb', 'rpm', 'msi', 'sbom', 'homebrew', 'winget', 'sums'] as const;
export type PackageKind = (typeof PACKAGE_KINDS)[number];

const DESCRIPTION =
  "Claude Code's apiKeyHelper: each developer's LLM-gateway key from the company's secrets store, cached in the OS keychain";
const HOMEPAGE = 'https://github.com/OWNER/keybroker';
const DEB_ARCH: Partial<Record<Target, string>> = { 'linux-x64': 'amd64', 'linux-arm64': 'arm64' };
const RPM_ARCH: Partial<Record<Target, string>> = { 'linux-x64': 'x86_64', 'linux-arm64': 'aarch64' };
/** What Node 26's Linux binaries link (readelf -d: NEEDED), beyond what every system has; minimal images lack libatomic. */
const DEB_DEPENDS = 'libc6 (>= 2.28), libstdc++6, libgcc-s1 | libgcc1, libatomic1';
const RPM_REQUIRES = 'glibc >= 2.28, libstdc++, libgcc, libatomic';
/** Never changes: Windows Installer finds the installed keybroker by it to upgrade it. */
const MSI_UPGRADE_CODE = '6B2E5A8C-3C1F-4E51-9D4A-6F0B1C7E2A41';

export interface PackageInput {
  out: string;
  work: string;
  version: string;
  epoch: string;
  binaries: Partial<Record<Target, string>>;
  kinds: PackageKind[];
  nodeVersion: string;
  pins: Pins;
  log(line: string): void;
}

const sha256 = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** A GUID that depends only on `seed` (MSI product codes must change with the version, and only then). */
function stableGuid(seed: string): string {
  const hex = createHash('sha256').update(seed).digest('hex').toUpperCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-A${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(command, args, {
    cwd: options.cwd ?? root,
    env: options.env ?? process.env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Every file and folder under `dir` dated `epoch` (links themselves, not their targets). */
function stamp(dir: string, epoch: string): void {
  run('find', [dir, '-exec', 'touch', '-h', '-d', `@${epoch}`, '{}', '+']);
}

/** The release's download address; the release workflow sets it to the GitHub release's. */
function baseUrl(version: string): string {
  return (process.env['KEYBROKER_RELEASE_BASE_URL'] ?? `${HOMEPAGE}/releases/download/v${version}`).replace(/\/$/, '');
}

export async function writePackages(input: PackageInput): Promise<void> {
  const { out, work, version, epoch, binaries, kinds, log } = input;
  const env = { ...process.env, SOURCE_DATE_EPOCH: epoch, TZ: 'UTC', LC_ALL: 'C' };
  const archives: Partial<Record<Target, string>> = {};
  let msiFile: string | undefined;
  let msiProductCode: string | undefined;

  for (const [target, binary] of Object.entries(binaries) as [Target, string][]) {
    const windows = target.startsWith('win');
    const stage = path.join(work, 'stage', target);
    fs.rmSync(stage, { recursive: true, force: true });
    fs.mkdirSync(stage, { recursive: true });
    const name = windows ? 'keybroker.exe' : 'keybroker';
    fs.copyFileSync(binary, path.join(stage, name));
    fs.chmodSync(path.join(stage, name), 0o755);
    stamp(stage, epoch);

    if (kinds.includes('archives')) {
      const base = `keybroker-${version}-${target}`;
      if (windows) {
        archives[target] = path.join(out, `${base}.zip`);
        run('zip', ['-X', '-q', '-9', archives[target], name], { cwd: stage, env });
      } else {
        archives[target] = path.join(out, `${base}.tar.gz`);
        const tar = path.join(work, `${base}.tar`);
        run(
          'tar',
          ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=@${epoch}`, '--format=gnu', '-cf', tar, '-C', stage, name],
          { env },
        );
        execFileSync('sh', ['-c', 'gzip -n -c "$1" > "$2"', 'sh', tar, archives[target]]);
        fs.rmSync(tar);
      }
      log(`${path.basename(archives[target])}`);
    }

    const debArch = DEB_ARCH[target];
    if (kinds.includes('deb') && debArch) {
      const tree = path.join(work, 'deb', debArch);
      fs.mkdirSync(path.join(tree, 'DEBIAN'), { recursive: true });
      fs.mkdirSync(path.join(tree, 'usr', 'bin'), { recursive: true });
      fs.copyFileSync(binary, path.join(tree, 'usr', 'bin', 'keybroker'));
      fs.chmodSync(path.join(tree, 'usr', 'bin', 'keybroker'), 0o755);
      const size = Math.ceil(fs.statSync(binary).size / 1024);
      fs.writeFileSync(
        path.join(tree, 'DEBIAN', 'control'),
        `Package: keybroker\nVersion: ${version}\nArchitecture: ${debArch}\nMaintainer: keybroker maintainers <keybroker@example.com>\nInstalled-Size: ${size}\nDepends: ${DEB_DEPENDS}\nSection: utils\nPriority: optional\nHomepage: ${HOMEPAGE}\nDescription: ${DESCRIPTION.split(':')[0]}\n ${DESCRIPTION}.\n A single executable (Node ${input.nodeVersion} inside); needs no Node on the machine.\n`,
      );
      fs.chmodSync(path.join(tree, 'DEBIAN'), 0o755);
      for (const dir of ['', 'usr', 'usr/bin']) fs.chmodSync(path.join(tree, dir), 0o755);
      fs.chmodSync(path.join(tree, 'DEBIAN', 'control'), 0o644);
      stamp(tree, epoch);
      const deb = path.join(out, `keybroker_${version}_${debArch}.deb`);
      // gzip, not xz: as small within a few percent for this binary, several times faster, read by every dpkg.
      run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, deb], { env });
      log(path.basename(deb));
    }

    const rpmArch = RPM_ARCH[target];
    if (kinds.includes('rpm') && rpmArch) {
      const top = path.join(work, 'rpm', rpmArch);
      for (const dir of ['SPECS', 'SOURCES', 'BUILD', 'RPMS', 'SRPMS', 'BUILDROOT']) fs.mkdirSync(path.join(top, dir), { recursive: true });
      fs.copyFileSync(binary, path.join(top, 'SOURCES', 'keybroker'));
      const spec = path.join(top, 'SPECS', 'keybroker.spec');
      fs.writeFileSync(
        spec,
        [
          'Name: keybroker',
          `Version: ${version}`,
          'Release: 1',
          `Summary: ${DESCRIPTION.split(':')[0]}`,
          'License: Apache-2.0',
          `URL: ${HOMEPAGE}`,
          // Named by hand: rpm's own scan cannot read a foreign architecture's binary.
          'AutoReqProv: no',
          `Requires: ${RPM_REQUIRES}`,
          '%description',
          `${DESCRIPTION}. A single executable (Node ${input.nodeVersion} inside); needs no Node on the machine.`,
          '%install',
          'install -D -m 0755 %{_sourcedir}/keybroker %{buildroot}/usr/bin/keybroker',
          '%files',
          '/usr/bin/keybroker',
          '',
        ].join('\n'),
      );
      const defines = {
        _topdir: top,
        _dbpath: path.join(top, 'db'),
        // rpm's stripping and debug-info extraction would cut the SEA blob out of the binary.
        __os_install_post: '%{nil}',
        __strip: '/bin/true',
        debug_package: '%{nil}',
        _build_id_links: 'none',
        _binary_payload: 'w9.gzdio',
        _buildhost: 'reproducible',
        use_source_date_epoch_as_buildtime: '1',
        clamp_mtime_to_source_date_epoch: '1',
      };
      run(
        'rpmbuild',
        [
          '--quiet',
          '--noclean',
          '--target',
          rpmArch,
          ...Object.entries(defines).flatMap(([key, value]) => ['--define', `${key} ${value}`]),
          '-bb',
          spec,
        ],
        { env },
      );
      const built = path.join(top, 'RPMS', rpmArch, `keybroker-${version}-1.${rpmArch}.rpm`);
      const rpm = path.join(out, path.basename(built));
      fs.copyFileSync(built, rpm);
      log(path.basename(rpm));
    }

    if (kinds.includes('msi') && target === 'win-x64') {
      msiProductCode = stableGuid(`keybroker-msi-product-${version}`);
      msiFile = path.join(out, `keybroker-${version}-x64.msi`);
      msi(path.join(work, 'msi'), binary, version, msiProductCode, msiFile, env);
      log(path.basename(msiFile));
    }
  }

  if (kinds.includes('sbom')) {
    const file = path.join(out, `keybroker-${version}.cdx.json`);
    fs.writeFileSync(file, sbom(input));
    log(path.basename(file));
  }
  // Archives of this run, and of an earlier run in the same folder (the macOS job re-signs and re-archives darwin only).
  for (const target of ['linux-x64', 'linux-arm64', 'darwin-arm64', 'darwin-x64'] as const) {
    const existing = path.join(out, `keybroker-${version}-${target}.tar.gz`);
    if (!archives[target] && fs.existsSync(existing)) archives[target] = existing;
  }
  if (kinds.includes('homebrew') && Object.keys(archives).some((target) => !target.startsWith('win'))) {
    fs.writeFileSync(path.join(out, 'keybroker.rb'), homebrewFormula(version, archives));
    log('keybroker.rb');
  }
  if (kinds.includes('winget') && msiFile && msiProductCode) {
    for (const [name, text] of Object.entries(wingetManifests(version, msiFile, msiProductCode)))
      fs.writeFileSync(path.join(out, name), text);
    log('winget manifests');
  }
  if (kinds.includes('sums')) {
    const files = listFiles(out).filter((file) => file !== 'SHA256SUMS');
    fs.writeFileSync(path.join(out, 'SHA256SUMS'), files.map((file) => `${sha256(path.join(out, file))}  ${file}\n`).join(''));
    log(`SHA256SUMS (${files.length} files)`);
  }
  for (const file of listFiles(out)) fs.utimesSync(path.join(out, file), Number(epoch), Number(epoch));
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? listFiles(dir, path.join(prefix, entry.name)) : [path.join(prefix, entry.name)]))
    .sort();
}

/**
 * The Windows installer (wixl, from Debian): keybroker.exe into Program Files\keybroker, per
 * machine, a newer version replacing an older one. wixl cannot edit PATH, which Claude Code's
 * apiKeyHelper (an absolute path) does not need.
 *
 * Reproducible: the cabinet records the file's modification time (set to SOURCE_DATE_EPOCH);
 * wixl stamps the summary's Created/Last saved with the clock and draws a random
 * package code (the summary's revision number; it ignores Package/@Id). So wixl runs under
 * faketime with the clock frozen at SOURCE_DATE_EPOCH, and msibuild (msitools) then writes the
 * summary again with a package code derived from what the package holds (Windows Installer treats
 * two packages with one code as the same package, so it changes whenever a byte of the input does).
 */
export function msi(dir: string, binary: string, version: string, productCode: string, file: string, env: NodeJS.ProcessEnv): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(binary, path.join(dir, 'keybroker.exe'));
  const epoch = env['SOURCE_DATE_EPOCH'] ?? '315532800';
  // The cabinet records each file's modification time.
  fs.utimesSync(path.join(dir, 'keybroker.exe'), Number(epoch), Number(epoch));
  const wxs = path.join(dir, 'keybroker.wxs');
  fs.writeFileSync(
    wxs,
    `<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="${productCode}" Name="keybroker" Language="1033" Version="${version}" Manufacturer="keybroker" UpgradeCode="${MSI_UPGRADE_CODE}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine" Description="${DESCRIPTION.split(':')[0]}" />
    <MajorUpgrade DowngradeErrorMessage="A newer keybroker is already installed." />
    <Media Id="1" Cabinet="keybroker.cab" EmbedCab="yes" />
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="keybroker">
          <Component Id="KeybrokerExe" Guid="${stableGuid('keybroker-msi-component-exe')}" Win64="yes">
            <File Id="KeybrokerExeFile" Name="keybroker.exe" Source="keybroker.exe" KeyPath="yes" />
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Main" Level="1"><ComponentRef Id="KeybrokerExe" /></Feature>
  </Product>
</Wix>
`,
  );
  // faketime's absolute form without '@' freezes the clock (with '@' it would tick from there).
  const frozen = new Date(Number(epoch) * 1000)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
  const timeEnv = { ...env, TZ: 'UTC' };
  run('faketime', ['-f', frozen, 'wixl', '--arch', 'x64', '-o', file, wxs], { cwd: dir, env: timeEnv });
  const packageCode = stableGuid(
    `keybroker-msi-package-${createHash('sha256').update(fs.readFileSync(wxs)).update(fs.readFileSync(binary)).digest('hex')}`,
  );
  run('faketime', ['-f', frozen, 'msibuild', file, '-s', DESCRIPTION.split(':')[0]!, 'keybroker', 'x64;1033', `{${packageCode}}`], {
    cwd: dir,
    env: timeEnv,
  });
}

/** npm's CycloneDX SBOM of the shipped dependencies, plus the Node runtime and addon each binary embeds. */
function sbom(input: PackageInput): string {
  const document = JSON.parse(
    run('npm', ['sbom', '--sbom-format', 'cyclonedx', '--omit', 'dev', '--package-lock-only', '--loglevel=error']),
  ) as {
    serialNumber?: string;
    metadata?: { timestamp?: string; component?: Record<string, unknown> };
    components?: unknown[];
  };
  const embedded = (Object.keys(input.binaries) as Target[]).flatMap((target) =>
    (['node', 'keyring'] as const).map((kind) => {
      const pin = input.pins[kind].targets[target];
      const pinVersion = input.pins[kind].version;
      const hex = Buffer.from(pin.integrity.replace(/^sha512-/, ''), 'base64').toString('hex');
      return {
        type: kind === 'node' ? 'platform' : 'library',
        'bom-ref': `embedded:${pin.package}@${pinVersion}`,
        name: pin.package,
        version: pinVersion,
        purl: `pkg:npm/${pin.package.replace('@', '%40')}@${pinVersion}`,
        description: `embedded in keybroker-${target} (${kind === 'node' ? 'the Node runtime' : 'the keychain addon'}); the hash is the npm tarball's`,
        hashes: [{ alg: 'SHA-512', content: hex }],
      };
    }),
  );
  document.components = [...(document.components ?? []), ...embedded];
  // npm names the root after its folder; what ships is the keybroker application.
  if (document.metadata?.component) Object.assign(document.metadata.component, { name: 'keybroker', type: 'application' });
  // npm stamps the time and a random serial number: pin both so the file is the same for a commit.
  if (document.metadata) document.metadata.timestamp = new Date(Number(input.epoch) * 1000).toISOString();
  const hex = createHash('sha256').update(JSON.stringify(document.components)).digest('hex');
  document.serialNumber = `urn:uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  return `${JSON.stringify(document, null, 2)}\n`;
}

function homebrewFormula(version: string, archives: Partial<Record<Target, string>>): string {
  const block = (target: Target, indent: string): string[] => {
    const archive = archives[target];
    if (!archive) return [];
    return [`${indent}url "${baseUrl(version)}/${path.basename(archive)}"`, `${indent}sha256 "${sha256(archive)}"`];
  };
  const os = (name: string, arm: Target, intel: Target): string[] => {
    const armLines = block(arm, '      ');
    const intelLines = block(intel, '      ');
    if (!armLines.length && !intelLines.length) return [];
    return [
      `  ${name} do`,
      ...(armLines.length ? ['    on_arm do', ...armLines, '    end'] : []),
      ...(intelLines.length ? ['    on_intel do', ...intelLines, '    end'] : []),
      '  end',
      '',
    ];
  };
  return [
    '# Generated by `npm run build:release` (release/packages.ts) with the SHA-256s of this release.',
    'class Keybroker < Formula',
    `  desc "Claude Code apiKeyHelper: your LLM-gateway key from the company's secrets store"`,
    `  homepage "${HOMEPAGE}"`,
    `  version "${version}"`,
    '  license "Apache-2.0"',
    '',
    ...os('on_macos', 'darwin-arm64', 'darwin-x64'),
    ...os('on_linux', 'linux-arm64', 'linux-x64'),
    '  def install',
    '    bin.install "keybroker"',
    '  end',
    '',
    '  test do',
    '    assert_match version.to_s, shell_output("#{bin}/keybroker --version")',
    '  end',
    'end',
    '',
  ].join('\n');
}

function wingetManifests(version: string, msiFile: string, productCode: string): Record<string, string> {
  const id = 'Keybroker.Keybroker';
  const head = (type: string): string =>
    `# Generated by \`npm run build:release\` (release/packages.ts). winget-pkgs: manifests/k/Keybroker/Keybroker/${version}/\n# yaml-language-server: $schema=https://aka.ms/winget-manifest.${type}.1.6.0.schema.json\nPackageIdentifier: ${id}\nPackageVersion: ${version}\n`;
  return {
    'Keybroker.Keybroker.yaml': `${head('version')}DefaultLocale: en-US\nManifestType: version\nManifestVersion: 1.6.0\n`,
    'Keybroker.Keybroker.installer.yaml': `${head('installer')}InstallerType: wix\nScope: machine\nUpgradeBehavior: install\nProductCode: '{${productCode}}'\nInstallers:\n- Architecture: x64\n  InstallerUrl: ${baseUrl(version)}/${path.basename(msiFile)}\n  InstallerSha256: ${sha256(msiFile).toUpperCase()}\nManifestType: installer\nManifestVersion: 1.6.0\n`,
    'Keybroker.Keybroker.locale.en-US.yaml': `${head('defaultLocale')}PackageLocale: en-US\nPublisher: keybroker\nPackageName: keybroker\nLicense: Apache-2.0\nShortDescription: ${DESCRIPTION.split(':')[0]}\nDescription: ${DESCRIPTION}. Installs keybroker.exe into Program Files\\keybroker; point Claude Code's apiKeyHelper at it.\nManifestType: defaultLocale\nManifestVersion: 1.6.0\n`,
  };
}
