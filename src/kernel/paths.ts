// Where keybroker's files live on each OS. Every path can be moved by an environment variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

type Env = NodeJS.ProcessEnv;

function home(env: Env): string {
  return env['HOME'] || env['USERPROFILE'] || os.homedir();
}

/** The path syntax of `platform` (the functions here answer for any platform, tests ask for each). */
function pathsOf(platform: NodeJS.Platform): typeof path.posix {
  return platform === 'win32' ? path.win32 : path.posix;
}

/** The machine-wide file that admins distribute (MDM, config management). */
export function machineConfigPath(env: Env, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_MACHINE_CONFIG']) return env['KEYBROKER_MACHINE_CONFIG'];
  if (platform === 'win32') return path.win32.join(env['ProgramData'] || 'C:\\ProgramData', 'keybroker', 'config.json');
  if (platform === 'darwin') return '/Library/Application Support/keybroker/config.json';
  return '/etc/keybroker/config.json';
}

/** The user's own file. */
export function userConfigPath(env: Env, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_CONFIG']) return env['KEYBROKER_CONFIG'];
  if (platform === 'win32') {
    return path.win32.join(env['APPDATA'] || path.win32.join(home(env), 'AppData', 'Roaming'), 'keybroker', 'config.json');
  }
  const base = env['XDG_CONFIG_HOME'] || path.join(home(env), '.config');
  return path.join(base, 'keybroker', 'config.json');
}

/** Private per-user folder for the file cache and the extracted keychain addon. */
export function userCacheDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_CACHE_DIR']) return env['KEYBROKER_CACHE_DIR'];
  if (platform === 'win32') {
    return path.win32.join(env['LOCALAPPDATA'] || path.win32.join(home(env), 'AppData', 'Local'), 'keybroker', 'cache');
  }
  if (platform === 'darwin') return path.join(home(env), 'Library', 'Caches', 'keybroker');
  return path.join(env['XDG_CACHE_HOME'] || path.join(home(env), '.cache'), 'keybroker');
}

/** The file cache's folder: where `get` writes cached keys and `cache clear` and `doctor` look. */
export function keyFilesDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  return pathsOf(platform).join(userCacheDir(env, platform), 'keys');
}

/** Short-lived per-user state: locks and the record of which Claude Code process was served. */
export function userRuntimeDir(env: Env, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_RUNTIME_DIR']) return env['KEYBROKER_RUNTIME_DIR'];
  if (platform === 'linux' && env['XDG_RUNTIME_DIR']) return path.join(env['XDG_RUNTIME_DIR'], 'keybroker');
  return pathsOf(platform).join(userCacheDir(env, platform), 'run');
}

/** Refuse folders that cannot hold private files (and `/proc`, where mkdir spins forever in Node). */
function checkPrivateDir(dir: string): string | undefined {
  if (!path.isAbsolute(dir)) return `${dir} is not an absolute path`;
  const normalized = path.resolve(dir);
  for (const pseudo of ['/proc', '/sys', '/dev']) {
    if (normalized === pseudo || normalized.startsWith(pseudo + '/')) return `${dir} is under ${pseudo}`;
  }
  return undefined;
}

/** Creates `dir` (0700) where needed; why it cannot hold private files, or undefined when it can. */
export function makePrivateDir(dir: string): string | undefined {
  const problem = checkPrivateDir(dir);
  if (problem) return problem;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return undefined;
  } catch (error) {
    return `cannot create ${dir} (${(error as NodeJS.ErrnoException).code})`;
  }
}
