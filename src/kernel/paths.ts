// Where keybroker's files live on each OS. Every path can be moved by an environment variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

type Env = NodeJS.ProcessEnv;

/** The variables that move keybroker's files. A relative value is ignored (as the XDG spec says): Claude Code runs the helper in the developer's project, which would then choose where keys, locks and the keychain addon live. */
const PATH_VARIABLES = [
  'HOME',
  'USERPROFILE',
  'APPDATA',
  'LOCALAPPDATA',
  'XDG_CONFIG_HOME',
  'XDG_CACHE_HOME',
  'XDG_RUNTIME_DIR',
  'KEYBROKER_CONFIG',
  'KEYBROKER_MACHINE_CONFIG',
  'KEYBROKER_CACHE_DIR',
  'KEYBROKER_RUNTIME_DIR',
] as const;

function isAbsoluteOn(value: string, platform: NodeJS.Platform): boolean {
  return platform === 'win32' ? path.win32.isAbsolute(value) : path.posix.isAbsolute(value);
}

/** Under /proc, a path names the running process's own things: /proc/self/cwd is the folder Claude Code runs in. */
const PROCESS_FOLDER = '/proc';

function underProc(file: string): boolean {
  const normalized = path.posix.resolve(file);
  return normalized === PROCESS_FOLDER || normalized.startsWith(`${PROCESS_FOLDER}/`);
}

const MAX_LINKS = 40;

/**
 * True when `file`, its links followed one by one as the kernel would, passes through /proc (a
 * link to /proc/self/cwd, /dev/fd/N). One lstat per component, and one readlink per link.
 */
export function leadsIntoProc(file: string): boolean {
  const pending = file.split('/').filter(Boolean);
  let at = '/';
  for (let links = 0; pending.length > 0; ) {
    const next = path.posix.join(at, pending.shift()!);
    if (underProc(next)) return true;
    let target: string;
    try {
      if (!fs.lstatSync(next).isSymbolicLink()) {
        at = next;
        continue;
      }
      target = fs.readlinkSync(next);
    } catch {
      return false; // what does not exist (yet) has no link to follow
    }
    if (++links > MAX_LINKS) return false;
    if (target.startsWith('/')) at = '/';
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return false;
}

/** Why a path variable's value is ignored, or undefined when it is used. Memoized: several paths read the same variable. */
const verdicts = new Map<string, 'relative' | 'proc' | undefined>();
function pathVerdict(value: string, platform: NodeJS.Platform): 'relative' | 'proc' | undefined {
  if (!isAbsoluteOn(value, platform)) return 'relative';
  if (platform === 'win32' || platform !== process.platform) return undefined;
  const key = value;
  if (!verdicts.has(key)) verdicts.set(key, leadsIntoProc(value) ? 'proc' : undefined);
  return verdicts.get(key);
}

/** The variable's value when it is set to an absolute path that does not lead into /proc; otherwise it counts as unset. */
function absolute(env: Env, name: (typeof PATH_VARIABLES)[number], platform: NodeJS.Platform = process.platform): string | undefined {
  const value = env[name];
  return value && pathVerdict(value, platform) === undefined ? value : undefined;
}

/** The set variables that are ignored because they are relative paths (for one warning line). */
export function relativePathVariables(env: Env, platform: NodeJS.Platform = process.platform): string[] {
  return PATH_VARIABLES.filter((name) => env[name] && pathVerdict(env[name]!, platform) === 'relative');
}

/** The set variables that are ignored because they lead into /proc, a link followed or not (for one warning line). */
export function procPathVariables(env: Env, platform: NodeJS.Platform = process.platform): string[] {
  return PATH_VARIABLES.filter((name) => env[name] && pathVerdict(env[name]!, platform) === 'proc');
}

function home(env: Env, platform: NodeJS.Platform = process.platform): string {
  return absolute(env, 'HOME', platform) || absolute(env, 'USERPROFILE', platform) || passwdHome();
}

/** The home folder from the user database, for a HOME that is unset or relative ('' where there is none). */
function passwdHome(): string {
  try {
    return os.userInfo().homedir;
  } catch {
    return '';
  }
}

/** The path syntax of `platform` (the functions here answer for any platform, tests ask for each). */
function pathsOf(platform: NodeJS.Platform): typeof path.posix {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** The machine-wide file that admins distribute (MDM, config management). */
export function machineConfigPath(env: Env, platform: NodeJS.Platform = process.platform): string {
  const moved = absolute(env, 'KEYBROKER_MACHINE_CONFIG', platform);
  if (moved) return moved;
  if (platform === 'win32') return path.win32.join(env['ProgramData'] || 'C:\\ProgramData', 'keybroker', 'config.json');
  if (platform === 'darwin') return '/Library/Application Support/keybroker/config.json';
  return '/etc/keybroker/config.json';
}

/** The user's own file. */
export function userConfigPath(env: Env, platform: NodeJS.Platform = process.platform): string {
  const moved = absolute(env, 'KEYBROKER_CONFIG', platform);
  if (moved) return moved;
  if (platform === 'win32') {
    return path.win32.join(
      absolute(env, 'APPDATA', platform) || path.win32.join(home(env, platform), 'AppData', 'Roaming'),
      'keybroker',
      'config.json',
    );
  }
  const base = absolute(env, 'XDG_CONFIG_HOME', platform) || path.join(home(env, platform), '.config');
  return path.join(base, 'keybroker', 'config.json');
}

/** Private per-user folder for the file cache and the extracted keychain addon. */
export function userCacheDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  const moved = absolute(env, 'KEYBROKER_CACHE_DIR', platform);
  if (moved) return moved;
  if (platform === 'win32') {
    return path.win32.join(
      absolute(env, 'LOCALAPPDATA', platform) || path.win32.join(home(env, platform), 'AppData', 'Local'),
      'keybroker',
      'cache',
    );
  }
  if (platform === 'darwin') return path.join(home(env, platform), 'Library', 'Caches', 'keybroker');
  return path.join(absolute(env, 'XDG_CACHE_HOME', platform) || path.join(home(env, platform), '.cache'), 'keybroker');
}

/** The file cache's folder: where `get` writes cached keys and `cache clear` and `doctor` look. */
export function keyFilesDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  return pathsOf(platform).join(userCacheDir(env, platform), 'keys');
}

/** Short-lived per-user state: locks and the record of which Claude Code process was served. */
export function userRuntimeDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  const moved = absolute(env, 'KEYBROKER_RUNTIME_DIR', platform);
  if (moved) return moved;
  const xdg = absolute(env, 'XDG_RUNTIME_DIR', platform);
  if (platform === 'linux' && xdg) return path.join(xdg, 'keybroker');
  return pathsOf(platform).join(userCacheDir(env, platform), 'run');
}

/**
 * Why a folder cannot hold private files (a relative path: it would be resolved in the folder Claude
 * Code runs in, a repository; `/proc`, where mkdir spins forever in Node), or undefined when it can.
 */
export function unusableFolder(dir: string): string | undefined {
  if (!path.isAbsolute(dir)) return `${shortPath(dir)} is not an absolute path`;
  const normalized = path.resolve(dir);
  for (const pseudo of ['/proc', '/sys', '/dev']) {
    if (normalized === pseudo || normalized.startsWith(`${pseudo}/`)) return `${shortPath(dir)} is under ${pseudo}`;
  }
  return undefined;
}

/**
 * Creates `dir` (0700) where needed and makes sure only this user can use it: a folder of
 * another user is refused, one of ours that others can read or write is made 0700 again.
 * Why it cannot hold private files, or undefined when it can.
 */
export function makePrivateDir(dir: string, platform: NodeJS.Platform = process.platform): string | undefined {
  const problem = unusableFolder(dir);
  if (problem) return problem;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stat = fs.statSync(dir);
    if (!stat.isDirectory()) return `${shortPath(dir)} is not a folder`;
    if (platform === 'win32') return undefined;
    if (typeof process.getuid === 'function' && stat.uid !== process.getuid())
      return `${shortPath(dir)} belongs to another user (uid ${stat.uid})`;
    if ((stat.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
    return undefined;
  } catch (error) {
    return `cannot create ${shortPath(dir)} (${describeErrno(realMkdirError(dir, error))})`;
  }
}

/**
 * Node's recursive mkdir reports ENOENT when creating a folder fails for another reason (a
 * read-only XDG_RUNTIME_DIR gives "ENOENT"): the first missing folder, created alone, tells the truth.
 */
function realMkdirError(dir: string, error: unknown): unknown {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return error;
  let missing = path.resolve(dir);
  while (path.dirname(missing) !== missing && !fs.existsSync(path.dirname(missing))) missing = path.dirname(missing);
  try {
    fs.mkdirSync(missing, { mode: 0o700 });
  } catch (real) {
    return real;
  }
  return error;
}

/** An errno code with what it means to a user: a full disk is not a permissions problem. */
export function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `${code}: the disk is full`;
  if (code === 'EROFS') return 'EROFS: the file system is read-only';
  if (code === 'EACCES' || code === 'EPERM') return `${code}: permission denied`;
  if (code === 'ENAMETOOLONG') return `${code}: the path is too long`;
  return code ?? (error as Error).message;
}

/** What to do about an errno code met writing keybroker's files. */
export function fixForErrno(error: unknown, folderVariable: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'free some disk space';
  if (code === 'EROFS') return `set ${folderVariable} to a writable folder`;
  if (code === 'ENAMETOOLONG') return `set ${folderVariable} to a shorter folder`;
  return `check the folder's permissions or set ${folderVariable} to a private folder`;
}

/** A path short enough for a message: a very long one keeps its start and its end. */
export function shortPath(file: string, max = 120): string {
  if (file.length <= max) return file;
  const keep = Math.floor((max - 1) / 2);
  return `${file.slice(0, keep)}…${file.slice(-keep)} (${file.length} characters)`;
}

/**
 * The project a cloned repository controls, as seen from `cwd` (the folder Claude Code runs a
 * helper in): the nearest folder at or above it holding `.git` or `.mcp.json` (where a project's
 * MCP helpers come from). Never `/`, the home folder from the user database (HOME can be moved
 * by a command line) or a folder above it: undefined then, and when there is none.
 */
export function projectFolder(cwd: string): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(cwd);
  } catch {
    return undefined;
  }
  const homeDir = realOrSame(passwdHome());
  const excluded = (dir: string) => path.dirname(dir) === dir || dir === homeDir || homeDir.startsWith(`${dir}${path.sep}`);
  for (let dir = real; !excluded(dir); dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, '.git')) || fs.existsSync(path.join(dir, '.mcp.json'))) return dir;
  }
  return undefined;
}

function realOrSame(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return dir;
  }
}

/** True when `file` (links resolved) lies inside `folder`. */
export function isInsideFolder(file: string, folder: string): boolean {
  const real = realOrSame(path.resolve(file));
  return real === folder || real.startsWith(`${folder}${path.sep}`);
}
