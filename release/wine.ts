// Wine >= 10 for running keybroker-win-x64.exe on this Linux machine. Debian 12's wine 8 cannot run
// Node >= 24 ("Fatal process out of memory: SegmentedTable::InitializeTable"), so the wine here is
// Debian 13's (trixie, wine 10.0), installed from Debian's packages into a root of its own made
// with debootstrap, once, and kept in ~/.cache/keybroker/wine-root-trixie (KEYBROKER_WINE_ROOT).
// Programs run in it through chroot, in a mount namespace of their own (unshare) so that the bind
// mounts (/proc, /dev, the folders the program needs) vanish with the process; the network is the
// host's, so a store on the host's 127.0.0.1 is reachable. Needs root (chroot, mount).
//
//   node release/wine.ts                 makes the root if it is not there, and prints its wine's version
//   node release/wine.ts FILE.exe ARGS   runs a Windows program in it (the current folder bound in)
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const DEBIAN_SUITE = 'trixie';
/** What the root's wine must be at least: Node >= 24 needs wine 10. */
export const MIN_WINE_MAJOR = 10;
const READY = '.keybroker-wine-ready';
/** Debian's wine64 package puts its loader here; /usr/bin/wine comes with the `wine` package, which is not needed. */
export const WINE = '/usr/lib/wine/wine64';
const WINESERVER = '/usr/lib/wine/wineserver64';

export function wineRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env['KEYBROKER_WINE_ROOT'] ?? path.join(os.homedir(), '.cache', 'keybroker', `wine-root-${DEBIAN_SUITE}`));
}

/**
 * Why `dir` is not safe to run programs from as this user, or undefined: it and every directory
 * above it must belong to root or to this user and be writable by no one else (a sticky directory
 * such as /tmp may be shared above it). The root's programs run as root in a chroot: a root another
 * user could write to would be theirs to run code as root with.
 */
export function untrustedDirectory(dir: string, uid = process.getuid?.() ?? 0): string | undefined {
  let at = fs.realpathSync(dir);
  for (let own = true; ; own = false) {
    const stat = fs.statSync(at);
    if (stat.uid !== 0 && stat.uid !== uid) return `${at} belongs to uid ${stat.uid}, not to root or this user`;
    const sharedButSticky = !own && (stat.mode & 0o1000) !== 0;
    if ((stat.mode & 0o022) !== 0 && !sharedButSticky)
      return `${at} is writable by ${stat.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(stat.mode & 0o7777).toString(8)})`;
    if (at === '/') return undefined;
    at = path.dirname(at);
  }
}

/**
 * The wine version recorded when the root was finished, or undefined when there is no finished root.
 * A finished root someone else could have changed is refused, not used.
 */
export function readyWine(root = wineRoot()): string | undefined {
  let version: string | undefined;
  try {
    version = fs.readFileSync(path.join(root, READY), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
  const why = version && untrustedDirectory(root);
  if (why)
    throw new Error(
      `the wine root ${root} is not safe to use: ${why}. Remove it (rm -rf ${root}) and run again to make a new one, or set KEYBROKER_WINE_ROOT to a directory only you can write`,
    );
  return version;
}

/** Why this machine cannot make or use the root, or undefined when it can. */
export function cannotRunWine(): string | undefined {
  if (process.platform !== 'linux') return `wine roots are made on Linux (this is ${process.platform})`;
  if (process.arch !== 'x64') return `wine runs keybroker-win-x64.exe on x86-64 (this is ${process.arch})`;
  if (process.getuid?.() !== 0) return 'making and entering the wine root needs root (debootstrap, chroot, mount): run as root';
  for (const tool of ['unshare', 'chroot', 'mount'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing (apt: util-linux / coreutils / mount)`;
  return undefined;
}

function debianLike(): boolean {
  try {
    return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(fs.readFileSync('/etc/os-release', 'utf8')) && fs.existsSync('/usr/bin/apt-get');
  } catch {
    return false;
  }
}

/** debootstrap on PATH: installed with apt-get as root on Debian/Ubuntu, else an error naming the command. */
export function ensureDebootstrap(log: (line: string) => void): void {
  const present = (): boolean => spawnSync('sh', ['-c', 'command -v debootstrap']).status === 0;
  if (present()) return;
  if (process.getuid?.() === 0 && debianLike()) {
    log('installing debootstrap with apt-get');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [
      ['update', '-q', '-o', 'DPkg::Lock::Timeout=300'],
      ['install', '-y', '-q', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', 'debootstrap'],
    ]) {
      const result = spawnSync('apt-get', args, { env, stdio: ['ignore', 2, 2] });
      if (result.status !== 0) break;
    }
    if (present()) return;
  }
  throw new Error(
    `debootstrap is missing: ${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y --no-install-recommends debootstrap (or your system's package of it)`,
  );
}

function must(command: string, args: string[], what: string, env: NodeJS.ProcessEnv = process.env): void {
  const result = spawnSync(command, args, { env, stdio: ['ignore', 2, 2] });
  if (result.status !== 0) throw new Error(`${what} failed (${command} exit ${result.status ?? result.signal})`);
}

/**
 * Makes the root unless a finished one is there: debootstrap --variant=minbase trixie into
 * ROOT.partial, wine64 with apt-get inside (Debian's packages, --no-install-recommends), then renamed
 * into place, so an interrupted run never leaves a root that looks finished. Returns wine's version.
 */
export function ensureWineRoot(options: { root?: string; mirror?: string; log?: (line: string) => void } = {}): string {
  const root = options.root ?? wineRoot();
  const log = options.log ?? ((line: string) => process.stderr.write(`wine root: ${line}\n`));
  const ready = readyWine(root);
  if (ready) return ready;
  const why = cannotRunWine();
  if (why) throw new Error(why);
  ensureDebootstrap(log);
  const mirror = options.mirror ?? process.env['KEYBROKER_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
  const partial = `${root}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(root), { recursive: true, mode: 0o700 });
  const unsafe = untrustedDirectory(path.dirname(root));
  if (unsafe)
    throw new Error(
      `cannot make the wine root in ${path.dirname(root)}: ${unsafe}. Set KEYBROKER_WINE_ROOT to a directory only you can write`,
    );
  const started = Date.now();
  log(`debootstrap --variant=minbase ${DEBIAN_SUITE} ${partial} ${mirror} (once; minutes)`);
  must('debootstrap', ['--variant=minbase', DEBIAN_SUITE, partial, mirror], 'debootstrap');
  log(`apt-get install wine64 inside (${((Date.now() - started) / 1000).toFixed(0)} s so far)`);
  // /proc and /dev for the maintainer scripts, in a mount namespace that takes them away afterwards.
  const install = [
    'set -e',
    'mount -t proc proc "$1/proc"',
    'mount --rbind /dev "$1/dev"',
    'cp /etc/resolv.conf "$1/etc/resolv.conf"',
    'chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive apt-get update -q',
    'chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wine64',
    'chroot "$1" apt-get clean',
  ].join('\n');
  must('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', install, 'sh', partial], 'apt-get install wine64 in the root');
  const version = wineVersion(partial);
  const major = Number(/^wine-(\d+)/.exec(version)?.[1]);
  if (!(major >= MIN_WINE_MAJOR)) throw new Error(`the root's wine says "${version}", not wine >= ${MIN_WINE_MAJOR}`);
  fs.writeFileSync(path.join(partial, READY), `${version}\n`);
  fs.rmSync(root, { recursive: true, force: true });
  fs.renameSync(partial, root);
  log(`${version} ready in ${root} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return version;
}

function wineVersion(root: string): string {
  // wine finds ntdll.so from /proc/self/exe: without /proc it says "could not load ntdll.so".
  const script = 'mount -t proc proc "$1/proc" && chroot "$1" /usr/bin/env -i PATH=/usr/bin:/bin "$2" --version';
  const result = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', root, WINE], { encoding: 'utf8' });
  return (result.stdout || result.stderr).trim();
}

export interface WineRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** From a file, not a pipe: a pipe on a Windows program's stderr under wine gave EBADF (see below). */
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface WineOptions {
  /** The program's environment (only this, plus what wine itself needs). */
  env?: NodeJS.ProcessEnv;
  /** Host folders bound into the root at the same paths (the program, its config, its HOME...). */
  binds?: string[];
  /** The Windows prefix, a path inside the root (default /root/.wine-keybroker). */
  prefix?: string;
  timeoutMs?: number;
  root?: string;
}

/**
 * Runs `program` (a host path inside one of `binds`) under the root's wine with `args`. stdout is a
 * pipe; stderr goes to a file (a pipe there made Node's writes to stderr fail with EBADF under wine).
 * The whole process group is killed at the timeout; the run also waits for wineserver to exit, so
 * nothing it started outlives it.
 */
export function runUnderWine(program: string, args: string[], options: WineOptions = {}): Promise<WineRun> {
  const root = options.root ?? wineRoot();
  if (!readyWine(root)) throw new Error(`no wine root at ${root}: run node release/wine.ts first`);
  // A host path (not `msiexec` or `C:\\…`): its folder is bound in too.
  const hostProgram = path.posix.isAbsolute(program);
  const binds = [...new Set([...(hostProgram ? [path.dirname(program)] : []), ...(options.binds ?? [])].map((dir) => path.resolve(dir)))];
  // The mount points made inside the root for the binds, removed again (empty) after the run.
  const madeInRoot: string[] = [];
  for (const dir of binds) {
    for (let at = dir; at !== '/' && !fs.existsSync(path.join(root, at)); at = path.dirname(at)) madeInRoot.push(path.join(root, at));
  }
  const prefix = options.prefix ?? '/root/.wine-keybroker';
  const env: Record<string, string> = {
    HOME: '/root',
    WINEPREFIX: prefix,
    WINEDEBUG: '-all',
    // wine wants a runtime folder; the root has none of its own.
    XDG_RUNTIME_DIR: '/tmp',
    // No display here: keep wine from looking for one.
    DISPLAY: '',
    WINEDLLOVERRIDES: 'mscoree,mshtml=',
  };
  for (const [key, value] of Object.entries(options.env ?? {})) if (value !== undefined) env[key] = value;
  // The program's environment is the one given to unshare (no value in argv: a value may be a
  // secret); the script adds nothing to it but the shell's own PWD/SHLVL.
  const script = [
    'set -e',
    'r="$1"; n="$2"; shift 2',
    'mount -t proc proc "$r/proc"',
    'mount --rbind /dev "$r/dev"',
    // A /tmp of the run's own (wine's temporary files and its server socket go with the run).
    'mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"',
    'while [ "$n" -gt 0 ]; do mkdir -p "$r$1"; mount --rbind "$1" "$r$1"; shift; n=$((n-1)); done',
    'set +e',
    `chroot "$r" ${WINE} "$@"; rc=$?`,
    // wineserver lingers a few seconds after its last client; wait for it, so nothing outlives the run.
    `chroot "$r" ${WINESERVER} -w`,
    'exit $rc',
  ].join('\n');
  const hostEnv: NodeJS.ProcessEnv = { ...env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  // stdout and stderr are files, not pipes: under wine, Node's net.Socket on a pipe from the host
  // fails with "open EBADF" (process.stdout/stderr as streams, console.log).
  const outputs = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-wine-'));
  const stdoutFd = fs.openSync(path.join(outputs, 'stdout'), 'w+');
  const stderrFd = fs.openSync(path.join(outputs, 'stderr'), 'w+');
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', root, String(binds.length), ...binds, program, ...args],
      {
        env: hostEnv,
        stdio: ['ignore', stdoutFd, stderrFd],
        detached: true,
      },
    );
    fs.closeSync(stdoutFd);
    fs.closeSync(stderrFd);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    }, options.timeoutMs ?? 180_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = fs.readFileSync(path.join(outputs, 'stdout'), 'utf8');
      const stderr = fs.readFileSync(path.join(outputs, 'stderr'), 'utf8');
      fs.rmSync(outputs, { recursive: true, force: true });
      for (const dir of madeInRoot.sort((a, b) => b.length - a.length)) {
        try {
          fs.rmdirSync(dir);
        } catch {}
      }
      resolve({
        code,
        signal,
        stdout: stdout.replace(/\r\n/g, '\n'),
        stderr: stderr.replace(/\r\n/g, '\n'),
        timedOut,
        ms: Date.now() - started,
      });
    });
  });
}

if (import.meta.main) {
  const [program, ...args] = process.argv.slice(2);
  const version = ensureWineRoot();
  if (!program) {
    console.log(`${version} in ${wineRoot()}`);
  } else {
    const result = await runUnderWine(program, args, { binds: [process.cwd()] });
    process.stdout.write(result.stdout);
    process.stderr.write(result.stderr);
    process.exit(result.code ?? 1);
  }
}
