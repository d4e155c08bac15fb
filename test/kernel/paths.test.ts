// Every path of the table in docs/configuration.md, per platform (the functions take the platform, so each OS's rows
// are checked on this Linux machine).
import { describe, expect, it } from 'vitest';
import { keyFilesDir, machineConfigPath, userCacheDir, userConfigPath, userRuntimeDir } from '../../src/kernel/paths.ts';

const linuxEnv = { HOME: '/home/alice' };
const macEnv = { HOME: '/Users/alice' };
const winEnv = {
  USERPROFILE: 'C:\\Users\\Alice Smith',
  APPDATA: 'C:\\Users\\Alice Smith\\AppData\\Roaming',
  LOCALAPPDATA: 'C:\\Users\\Alice Smith\\AppData\\Local',
  ProgramData: 'C:\\ProgramData',
};

describe('paths per platform (the table in docs/configuration.md)', () => {
  it('Linux: /etc, XDG folders with their defaults, the runtime folder under XDG_RUNTIME_DIR', () => {
    expect(machineConfigPath(linuxEnv, 'linux')).toBe('/etc/keybroker/config.json');
    expect(userConfigPath(linuxEnv, 'linux')).toBe('/home/alice/.config/keybroker/config.json');
    expect(userConfigPath({ ...linuxEnv, XDG_CONFIG_HOME: '/xdg/config' }, 'linux')).toBe('/xdg/config/keybroker/config.json');
    expect(userCacheDir(linuxEnv, 'linux')).toBe('/home/alice/.cache/keybroker');
    expect(userCacheDir({ ...linuxEnv, XDG_CACHE_HOME: '/xdg/cache' }, 'linux')).toBe('/xdg/cache/keybroker');
    expect(keyFilesDir(linuxEnv, 'linux')).toBe('/home/alice/.cache/keybroker/keys');
    expect(keyFilesDir(winEnv, 'win32')).toBe('C:\\Users\\Alice Smith\\AppData\\Local\\keybroker\\cache\\keys');
    expect(userRuntimeDir({ ...linuxEnv, XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux')).toBe('/run/user/1000/keybroker');
    expect(userRuntimeDir(linuxEnv, 'linux')).toBe('/home/alice/.cache/keybroker/run');
  });

  it('macOS: /Library/Application Support, ~/.config, ~/Library/Caches; XDG_RUNTIME_DIR is not a macOS folder', () => {
    expect(machineConfigPath(macEnv, 'darwin')).toBe('/Library/Application Support/keybroker/config.json');
    expect(userConfigPath(macEnv, 'darwin')).toBe('/Users/alice/.config/keybroker/config.json');
    expect(userCacheDir(macEnv, 'darwin')).toBe('/Users/alice/Library/Caches/keybroker');
    expect(userCacheDir({ ...macEnv, XDG_CACHE_HOME: '/elsewhere' }, 'darwin')).toBe('/Users/alice/Library/Caches/keybroker');
    expect(userRuntimeDir({ ...macEnv, XDG_RUNTIME_DIR: '/tmp/xdg' }, 'darwin')).toBe('/Users/alice/Library/Caches/keybroker/run');
  });

  it('Windows: %ProgramData%, %APPDATA%, %LOCALAPPDATA%, with backslashes and spaces kept', () => {
    expect(machineConfigPath(winEnv, 'win32')).toBe('C:\\ProgramData\\keybroker\\config.json');
    expect(userConfigPath(winEnv, 'win32')).toBe('C:\\Users\\Alice Smith\\AppData\\Roaming\\keybroker\\config.json');
    expect(userCacheDir(winEnv, 'win32')).toBe('C:\\Users\\Alice Smith\\AppData\\Local\\keybroker\\cache');
    expect(userRuntimeDir(winEnv, 'win32')).toBe('C:\\Users\\Alice Smith\\AppData\\Local\\keybroker\\cache\\run');
    // Without APPDATA/LOCALAPPDATA (a service account), under the profile folder.
    expect(userConfigPath({ USERPROFILE: 'C:\\Users\\svc' }, 'win32')).toBe('C:\\Users\\svc\\AppData\\Roaming\\keybroker\\config.json');
    expect(userCacheDir({ USERPROFILE: 'C:\\Users\\svc' }, 'win32')).toBe('C:\\Users\\svc\\AppData\\Local\\keybroker\\cache');
    expect(machineConfigPath({}, 'win32')).toBe('C:\\ProgramData\\keybroker\\config.json');
  });

  it('the variables move every path on every platform', () => {
    const env = {
      KEYBROKER_MACHINE_CONFIG: '/m.json',
      KEYBROKER_CONFIG: '/u.json',
      KEYBROKER_CACHE_DIR: '/c',
      KEYBROKER_RUNTIME_DIR: '/r',
    };
    for (const platform of ['linux', 'darwin', 'win32'] as const) {
      expect([
        machineConfigPath(env, platform),
        userConfigPath(env, platform),
        userCacheDir(env, platform),
        userRuntimeDir(env, platform),
      ]).toEqual(['/m.json', '/u.json', '/c', '/r']);
    }
  });
});

describe('a path variable that leads into /proc', () => {
  it('is found written so, through an absolute or a relative link, or through a link inside a folder link; a loop or a missing part is not', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { leadsIntoProc } = await import('../../src/kernel/paths.ts');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-proc-'));
    try {
      fs.symlinkSync('/proc/self/cwd', path.join(dir, 'abs'));
      fs.symlinkSync(path.relative(dir, '/proc/self/cwd'), path.join(dir, 'rel'));
      fs.mkdirSync(path.join(dir, 'real'));
      fs.symlinkSync('/dev/fd', path.join(dir, 'real', 'fds'));
      fs.symlinkSync('real', path.join(dir, 'folder'));
      fs.symlinkSync('loop', path.join(dir, 'loop'));
      expect(leadsIntoProc('/proc/self/cwd/kb.json')).toBe(true);
      expect(leadsIntoProc(path.join(dir, 'abs', 'kb.json'))).toBe(true);
      expect(leadsIntoProc(path.join(dir, 'rel', 'kb.json'))).toBe(true);
      expect(leadsIntoProc(path.join(dir, 'folder', 'fds', '3'))).toBe(true);
      expect(leadsIntoProc(path.join(dir, 'real', 'kb.json'))).toBe(false);
      expect(leadsIntoProc(path.join(dir, 'loop', 'kb.json'))).toBe(false);
      expect(leadsIntoProc(path.join(dir, 'absent', 'kb.json'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
