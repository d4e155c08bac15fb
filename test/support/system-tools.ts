// What the tests need from the machine that npm does not bring, in one list. The global set-up
// checks it before any test runs: as root on Debian/Ubuntu it installs what is missing with
// apt-get (KEYBROKER_TEST_NO_INSTALL=1 turns that off); anywhere else it stops at once and names
// the exact command to run. A later need (qemu, wine, a second local user) is one more entry here.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface SystemTool {
  /** What the tests run: a command looked up on PATH, or an absolute path. */
  command: string;
  /** Arguments the command must accept with exit 0, when being on PATH is not enough (Python modules). */
  probe?: string[];
  /** `command` is a file that must exist (a cross library), not a program to run. */
  library?: boolean;
  /** The Debian/Ubuntu packages that provide it. */
  apt: string[];
  /** The pip package, for the Python tools apt-get does not carry in the versions the tests need. */
  pip?: string;
  /** What needs it; a tool that only `npm run bench` needs is installed but never stops the tests. */
  neededBy: string;
  testsNeedIt: boolean;
  /** Where the tests ask for it; Linux only unless listed (the keychain, qemu and wine tests run on Linux only). */
  platforms?: NodeJS.Platform[];
}

const EVERYWHERE: NodeJS.Platform[] = ['linux', 'darwin', 'win32'];

/** The tools the tests ask for on `platform`. */
export function toolsFor(platform: NodeJS.Platform, tools: SystemTool[] = SYSTEM_TOOLS): SystemTool[] {
  return tools.filter((tool) => (tool.platforms ?? ['linux']).includes(platform));
}

export const SYSTEM_TOOLS: SystemTool[] = [
  { command: 'dbus-daemon', apt: ['dbus'], neededBy: 'a private D-Bus session bus for the keychain tests', testsNeedIt: true },
  // The keychain addon's D-Bus has X11 autolaunch compiled out, and the tests start their own bus.
  { command: 'dbus-launch', apt: ['dbus-x11'], neededBy: 'starting a session bus by hand to debug the keychain tests', testsNeedIt: false },
  { command: 'gnome-keyring-daemon', apt: ['gnome-keyring'], neededBy: 'a real Secret Service (the Linux keychain)', testsNeedIt: true },
  {
    command: 'secret-tool',
    apt: ['libsecret-tools'],
    neededBy: 'the independent client that checks what keybroker wrote to the keychain',
    testsNeedIt: true,
  },
  {
    command: '/usr/bin/python3',
    probe: ['-c', 'import dbus, gi'],
    apt: ['python3', 'python3-dbus', 'python3-gi'],
    neededBy: 'a locked keyring whose unlock prompt is never answered (test/support/locked-keyring.py)',
    testsNeedIt: true,
  },
  // Debian keeps initdb and postgres off PATH (/usr/lib/postgresql/<version>/bin); pg_lsclusters is on it.
  {
    command: 'pg_lsclusters',
    apt: ['postgresql'],
    neededBy: "the Claude apps gateway's store in its tests (test/support/apps-gateway.ts)",
    testsNeedIt: true,
  },
  { command: 'tmux', apt: ['tmux'], neededBy: "doctor's output on a real terminal", testsNeedIt: true },
  {
    command: 'gcc',
    apt: ['gcc'],
    neededBy: "a planted addon that the keychain addon's trust check must refuse (test/e2e/file-trust.test.ts)",
    testsNeedIt: true,
  },
  {
    command: 'openssl',
    apt: ['openssl'],
    neededBy: 'test CAs and certificates for the HTTPS and gRPC fakes',
    testsNeedIt: true,
    platforms: EVERYWHERE,
  },
  { command: 'strip', apt: ['binutils'], neededBy: 'a smaller dist/keybroker (bin/build.ts)', testsNeedIt: false },
  { command: 'hyperfine', apt: ['hyperfine'], neededBy: 'npm run bench', testsNeedIt: false },
  {
    command: 'moto_server',
    apt: [],
    pip: "'moto[server]'",
    neededBy: 'the AWS Secrets Manager emulator',
    testsNeedIt: true,
    platforms: EVERYWHERE,
  },
  { command: 'aws', apt: [], pip: 'awscli', neededBy: 'the real AWS CLI that seeds moto', testsNeedIt: true, platforms: EVERYWHERE },
  // The release build (npm run build:release) and test/release: other platforms' binaries, packages, signatures.
  { command: 'qemu-aarch64', apt: ['qemu-user'], neededBy: 'running keybroker-linux-arm64 on an x86-64 machine', testsNeedIt: true },
  {
    command: '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1',
    library: true,
    apt: ['libc6-arm64-cross'],
    neededBy: 'the arm64 C library qemu-aarch64 -L loads',
    testsNeedIt: true,
  },
  {
    command: '/usr/aarch64-linux-gnu/lib/libstdc++.so.6',
    library: true,
    apt: ['libstdc++6-arm64-cross'],
    neededBy: 'the arm64 C++ library Node links',
    testsNeedIt: true,
  },
  {
    command: '/usr/aarch64-linux-gnu/lib/libgcc_s.so.1',
    library: true,
    apt: ['libgcc-s1-arm64-cross'],
    neededBy: 'the arm64 libgcc Node links',
    testsNeedIt: true,
  },
  {
    command: '/usr/aarch64-linux-gnu/lib/libatomic.so.1',
    library: true,
    apt: ['libatomic1-arm64-cross'],
    neededBy: 'the arm64 libatomic Node 26 links',
    testsNeedIt: true,
  },
  { command: 'llvm-strip', apt: ['llvm'], neededBy: 'stripping the linux-arm64 binary (binutils strip knows x86 only)', testsNeedIt: true },
  {
    command: 'osslsigncode',
    apt: ['osslsigncode'],
    neededBy: "removing Node's Authenticode signature before injecting, and signing keybroker-win-x64.exe",
    testsNeedIt: true,
  },
  { command: 'rpmbuild', apt: ['rpm'], neededBy: 'the .rpm packages', testsNeedIt: true },
  { command: 'wixl', apt: ['wixl'], neededBy: 'the .msi', testsNeedIt: true },
  { command: 'dpkg-deb', apt: ['dpkg'], neededBy: 'the .deb packages', testsNeedIt: true },
  { command: 'zip', apt: ['zip'], neededBy: 'the Windows .zip', testsNeedIt: true },
  { command: 'file', apt: ['file'], neededBy: "checking each binary's platform", testsNeedIt: true },
  {
    command: 'msibuild',
    apt: ['msitools'],
    neededBy: "the .msi's summary rewritten with a derived package code (reproducible), and msiinfo reading it",
    testsNeedIt: true,
  },
  {
    command: 'faketime',
    apt: ['faketime'],
    neededBy: 'wixl run with its clock frozen at SOURCE_DATE_EPOCH (a reproducible .msi)',
    testsNeedIt: true,
  },
];

export const NO_INSTALL_VARIABLE = 'KEYBROKER_TEST_NO_INSTALL';

function onPath(command: string, env: NodeJS.ProcessEnv): string | undefined {
  // Windows finds `aws` as aws.exe or aws.cmd.
  const names =
    process.platform === 'win32'
      ? ['', ...(env['PATHEXT'] ?? '.EXE;.CMD;.BAT').split(';')].map((ext) => command + ext.toLowerCase())
      : [command];
  const candidates = path.isAbsolute(command)
    ? [command]
    : (env['PATH'] ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .flatMap((dir) => names.map((name) => path.join(dir, name)));
  return candidates.find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

export function isPresent(tool: SystemTool, env: NodeJS.ProcessEnv = process.env): boolean {
  if (tool.library) return fs.existsSync(tool.command);
  const file = onPath(tool.command, env);
  if (!file) return false;
  return !tool.probe || spawnSync(file, tool.probe, { stdio: 'ignore', env }).status === 0;
}

function debianLike(): boolean {
  try {
    const release = fs.readFileSync('/etc/os-release', 'utf8');
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(release) && fs.existsSync('/usr/bin/apt-get');
  } catch {
    return false;
  }
}

/** The apt-get commands that install `packages` (with sudo unless root). */
function aptCommands(packages: string[], root: boolean): string[] {
  const sudo = root ? '' : 'sudo ';
  return [`${sudo}apt-get update`, `${sudo}apt-get install -y --no-install-recommends ${packages.join(' ')}`];
}

export interface EnsureOptions {
  env?: NodeJS.ProcessEnv;
  log?(line: string): void;
  tools?: SystemTool[];
  platform?: NodeJS.Platform;
}

/**
 * Installs what is missing where it may (root, Debian/Ubuntu, not turned off), then throws an
 * error naming every tool the tests still lack and the exact commands that install it.
 */
export function ensureSystemTools(options: EnsureOptions = {}): void {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const platform = options.platform ?? process.platform;
  const tools = options.tools ?? toolsFor(platform);
  let missing = tools.filter((tool) => !isPresent(tool, env));
  if (missing.length === 0) return;
  const root = process.getuid?.() === 0;
  const debian = platform === 'linux' && debianLike();
  const packages = (list: SystemTool[]) => [...new Set(list.flatMap((tool) => tool.apt))];
  const installable = packages(missing);
  if (installable.length && debian && root && env[NO_INSTALL_VARIABLE] !== '1') {
    log(`test set-up: installing ${installable.join(' ')} with apt-get (set ${NO_INSTALL_VARIABLE}=1 to only check)`);
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    // Waits for another apt run (unattended-upgrades, a parallel job) instead of failing on its lock.
    const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
    for (const args of [
      ['update', '-q', ...lockWait],
      ['install', '-y', '-q', '--no-install-recommends', ...lockWait, ...installable],
    ]) {
      const result = spawnSync('apt-get', args, { env: aptEnv, stdio: ['ignore', 2, 2] });
      if (result.status !== 0) {
        log(`test set-up: apt-get ${args[0]} failed (exit ${result.status ?? result.signal})`);
        break;
      }
    }
    missing = tools.filter((tool) => !isPresent(tool, env));
  }
  const blocking = missing.filter((tool) => tool.testsNeedIt);
  for (const tool of missing.filter((tool) => !tool.testsNeedIt))
    log(
      `test set-up: ${tool.command} is missing (only ${tool.neededBy} needs it): ${tool.apt.length ? `apt-get install ${tool.apt.join(' ')}` : `pip install ${tool.pip}`}`,
    );
  if (blocking.length === 0) return;
  const lines = ['The tests need these tools, which this machine lacks:'];
  for (const tool of blocking) lines.push(`  ${tool.command}: ${tool.neededBy}`);
  lines.push('Install them, then run the tests again:');
  const aptNeeded = packages(blocking.filter((tool) => tool.apt.length));
  if (aptNeeded.length) {
    if (debian || platform === 'linux') for (const command of aptCommands(aptNeeded, root)) lines.push(`  ${command}`);
    else lines.push(`  the equivalents of the Debian packages ${aptNeeded.join(' ')} (the keychain tests need a Linux Secret Service)`);
  }
  const pip = blocking.flatMap((tool) => (tool.pip ? [tool.pip] : []));
  if (pip.length) lines.push(`  pip install ${pip.join(' ')}`);
  if (aptNeeded.length && debian && !root)
    lines.push(`(Run as root, the tests install the apt packages themselves unless ${NO_INSTALL_VARIABLE}=1.)`);
  else if (aptNeeded.length && debian && env[NO_INSTALL_VARIABLE] === '1')
    lines.push(`(Without ${NO_INSTALL_VARIABLE}=1, the tests install the apt packages themselves.)`);
  throw missingTools(lines.join('\n'));
}

/** An error that is all message: where in the set-up it was thrown says nothing to the reader. */
function missingTools(message: string): Error {
  const error = new Error(message);
  error.name = 'MissingSystemTools';
  error.stack = `${error.name}: ${message}`;
  return error;
}

// `npm test` runs this first (the `pretest` script), so a missing tool stops the run before vitest starts.
if (import.meta.main) {
  try {
    ensureSystemTools();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(1);
  }
}
