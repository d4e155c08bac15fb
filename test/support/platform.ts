// What the suite does differently on macOS and Windows (CI runs it natively on both): the keychain
// it sets up for the run, and the tests it skips there, each with its reason, listed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RUN_TAG } from './run-tag.ts';

export const NOT_LINUX: readonly NodeJS.Platform[] = ['darwin', 'win32'];

/** Whole files that need Linux; vitest.config.ts leaves them out elsewhere and the run's end lists them. */
export const LINUX_ONLY_FILES: ReadonlyArray<{ file: string; reason: string }> = [
  { file: 'test/e2e/keychain.test.ts', reason: 'a real Secret Service (gnome-keyring, secret-tool, a private D-Bus)' },
  { file: 'test/e2e/sso-keychain.test.ts', reason: 'a real Secret Service (gnome-keyring, secret-tool, a private D-Bus)' },
  { file: 'test/e2e/azure-binary.test.ts', reason: 'its binary runs cache in a real Secret Service started for the whole file' },
  { file: 'test/e2e/gcp-binary.test.ts', reason: 'its binary runs cache in a real Secret Service started for the whole file' },
  { file: 'test/e2e/vault-binary.test.ts', reason: 'checks the cached key with secret-tool in a real Secret Service' },
  { file: 'test/e2e/login.test.ts', reason: 'keeps the SSO token in a real Secret Service started for the whole file' },
  { file: 'test/doctor/doctor-cache.test.ts', reason: "doctor's cache layer against a real Secret Service (dbus + gnome-keyring)" },
  { file: 'test/e2e/file-trust.test.ts', reason: 'a second local user (chown to uid 65534, setpriv)' },
  { file: 'test/e2e/config-errors.test.ts', reason: 'a uid with no passwd entry (setpriv)' },
  { file: 'test/broker/stalls.e2e.test.ts', reason: 'bind mounts, a full tmpfs and FIFOs (mount, mkfifo)' },
  { file: 'test/doctor/setup-write.test.ts', reason: 'a second local user reads the written file (setpriv)' },
  {
    file: 'test/release/release-build.test.ts',
    reason: "the release build runs other platforms' binaries under qemu-user and checks packages with Linux tools",
  },
  { file: 'test/release/wine-root.test.ts', reason: 'a wine root (Linux only)' },
  { file: 'test/release/reproducible.test.ts', reason: 'the release build (qemu-user, wixl, rpmbuild, dpkg-deb)' },
  { file: 'test/release/npm-install.test.ts', reason: 'packs the linux-x64 platform package from dist/keybroker (the Linux binary)' },
  { file: 'test/release/action-install.test.ts', reason: 'the release archive made here holds dist/keybroker, a Linux binary' },
  { file: 'test/support/system-tools.test.ts', reason: 'checks the Debian/apt-get set-up of the Linux tools' },
];

/** The files vitest leaves out on `platform`. */
export function filesSkippedOn(platform: NodeJS.Platform): string[] {
  return platform === 'linux' ? [] : LINUX_ONLY_FILES.map(({ file }) => file);
}

/** Where this run's workers append the tests they skipped (one line each); the global teardown prints it. */
export function skipLogFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(os.tmpdir(), `keybroker-test-skips-${env[RUN_TAG] ?? 'no-run'}.log`);
}

/**
 * True when the tests that follow cannot run on this platform; then it prints the reason and records
 * it for the run's list. Use: `describe.skipIf(skipOn(NOT_LINUX, 'needs setpriv', import.meta.filename))`.
 */
export function skipOn(
  platforms: readonly NodeJS.Platform[],
  reason: string,
  where: string,
  platform: NodeJS.Platform = process.platform,
): boolean {
  if (!platforms.includes(platform)) return false;
  const line = `skipped on ${platform}: ${path.relative(process.cwd(), where) || where}: ${reason}`;
  process.stdout.write(`${line}\n`);
  fs.appendFileSync(skipLogFile(), `${line}\n`);
  return true;
}

/** Every skip of the run: the files left out and the tests `skipOn` skipped; the log file is removed. */
export function skipsOfRun(platform: NodeJS.Platform, env: NodeJS.ProcessEnv = process.env): string[] {
  const files = LINUX_ONLY_FILES.filter(({ file }) => filesSkippedOn(platform).includes(file)).map(
    ({ file, reason }) => `skipped on ${platform}: ${file}: ${reason}`,
  );
  let tests: string[] = [];
  try {
    tests = fs.readFileSync(skipLogFile(env), 'utf8').split('\n').filter(Boolean);
    fs.rmSync(skipLogFile(env), { force: true });
  } catch {
    // nothing was skipped test by test
  }
  return [...files, ...tests];
}

export interface Command {
  file: string;
  args: string[];
}

/** Runs a command and returns its stdout; throws when it fails. */
export type Runner = (command: Command) => string;

export interface PlatformSession {
  setUp(): void;
  tearDown(): void;
}

export interface PlatformSetupOptions {
  /** A folder for this run's own files (the throwaway keychain). */
  workDir: string;
  /** The throwaway keychain's password (random; it guards nothing but test items). */
  password: string;
}

/** The OS keychain the run uses: a throwaway default keychain on macOS, the runner user's Credential Manager on Windows. */
export function platformSetup(platform: NodeJS.Platform, run: Runner, options: PlatformSetupOptions): PlatformSession {
  if (platform === 'darwin') return throwawayKeychain(run, path.join(options.workDir, 'keybroker-test.keychain-db'), options.password);
  if (platform === 'win32') return credentialManagerCleanup(run);
  // Linux: each keychain test starts its own gnome-keyring on a private D-Bus (test/support/secret-service.ts).
  return { setUp() {}, tearDown() {} };
}

/** The quoted paths `security` prints, one a line. */
function keychainPaths(output: string): string[] {
  return output
    .split('\n')
    .map((line) => line.trim().replace(/^"|"$/g, ''))
    .filter(Boolean);
}

function throwawayKeychain(run: Runner, keychain: string, password: string): PlatformSession {
  const security = (...args: string[]) => run({ file: 'security', args });
  let previousDefault: string | undefined;
  let previousList: string[] = [];
  return {
    setUp() {
      previousDefault = keychainPaths(security('default-keychain', '-d', 'user'))[0];
      previousList = keychainPaths(security('list-keychains', '-d', 'user'));
      security('create-keychain', '-p', password, keychain);
      // No auto-lock and no lock on sleep: a locked keychain would prompt, and no one answers in CI.
      security('set-keychain-settings', keychain);
      security('unlock-keychain', '-p', password, keychain);
      security('list-keychains', '-d', 'user', '-s', keychain, ...previousList);
      security('default-keychain', '-d', 'user', '-s', keychain);
    },
    tearDown() {
      if (previousDefault) security('default-keychain', '-d', 'user', '-s', previousDefault);
      security('list-keychains', '-d', 'user', '-s', ...previousList.filter((item) => item !== keychain));
      security('delete-keychain', keychain);
    },
  };
}

/** Generic credentials keybroker writes (service "keybroker": target `<account>.keybroker`). */
function keybrokerTargets(cmdkeyList: string): string[] {
  return [...cmdkeyList.matchAll(/^\s*Target:\s*(?:LegacyGeneric:target=)?(.+\.keybroker)\s*$/gm)].map((match) => match[1]!.trim());
}

function credentialManagerCleanup(run: Runner): PlatformSession {
  const list = () => keybrokerTargets(run({ file: 'cmdkey', args: ['/list'] }));
  let before = new Set<string>();
  return {
    setUp() {
      before = new Set(list());
    },
    tearDown() {
      // Only what this run wrote: a credential the runner user had before stays.
      for (const target of list().filter((item) => !before.has(item))) run({ file: 'cmdkey', args: [`/delete:${target}`] });
    },
  };
}
