// Opening a private file: only a regular file of this user that no one else can write, judged on
// the descriptor; a FIFO neither blocks nor counts, a link is not followed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UnsafeFile, privateStatProblem, readPrivateFile, readTrustRoot } from '../../src/kernel/private-file.ts';
import { makePrivateDir, relativePathVariables, userCacheDir, userConfigPath, userRuntimeDir } from '../../src/kernel/paths.ts';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
function scratch(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-private-'));
  dirs.push(dir);
  return dir;
}
const problemOf = (file: string) => {
  try {
    readPrivateFile(file);
    return undefined;
  } catch (error) {
    return error instanceof UnsafeFile ? error.problem : String(error);
  }
};

it('reads a 0600 file of this user, and says undefined for no file', () => {
  const dir = scratch();
  fs.writeFileSync(path.join(dir, 'ok'), 'text', { mode: 0o600 });
  expect(readPrivateFile(path.join(dir, 'ok'))).toBe('text');
  expect(readPrivateFile(path.join(dir, 'absent'))).toBeUndefined();
});

it("refuses a FIFO at once instead of blocking, a link, another user's file and a file others can write", () => {
  const dir = scratch();
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  expect(problemOf(path.join(dir, 'fifo'))).toBe('is a FIFO, not a regular file');
  fs.writeFileSync(path.join(dir, 'target'), 'text', { mode: 0o600 });
  fs.symlinkSync(path.join(dir, 'target'), path.join(dir, 'link'));
  expect(problemOf(path.join(dir, 'link'))).toBe('is a symbolic link');
  expect(() => readPrivateFile(path.join(dir, 'link'))).toThrow(
    expect.objectContaining({ name: 'UnsafeFile', file: path.join(dir, 'link') }),
  );
  fs.writeFileSync(path.join(dir, 'theirs'), 'text', { mode: 0o600 });
  fs.chownSync(path.join(dir, 'theirs'), 65534, 65534);
  expect(problemOf(path.join(dir, 'theirs'))).toBe('belongs to another user (uid 65534)');
  fs.writeFileSync(path.join(dir, 'open'), 'text');
  fs.chmodSync(path.join(dir, 'open'), 0o666);
  expect(problemOf(path.join(dir, 'open'))).toBe('can be written by other users (mode 666)');
});

it('refuses a folder of another user and makes a folder of ours that others can use 0700', () => {
  const dir = scratch();
  const theirs = path.join(dir, 'theirs');
  fs.mkdirSync(theirs, { mode: 0o755 });
  fs.chownSync(theirs, 65534, 65534);
  expect(makePrivateDir(theirs)).toBe(`${theirs} belongs to another user (uid 65534)`);
  const ours = path.join(dir, 'ours');
  fs.mkdirSync(ours, { mode: 0o777 });
  fs.chmodSync(ours, 0o777);
  expect(makePrivateDir(ours)).toBeUndefined();
  expect(fs.statSync(ours).mode & 0o777).toBe(0o700);
});

it('ignores relative path variables (the XDG rule) and names them', () => {
  const env = {
    HOME: '/home/alice',
    XDG_CACHE_HOME: 'rel',
    XDG_CONFIG_HOME: './cfg',
    KEYBROKER_RUNTIME_DIR: 'run',
    KEYBROKER_CONFIG: 'kb.json',
  };
  expect(userCacheDir(env, 'linux')).toBe('/home/alice/.cache/keybroker');
  expect(userConfigPath(env, 'linux')).toBe('/home/alice/.config/keybroker/config.json');
  expect(userRuntimeDir(env, 'linux')).toBe('/home/alice/.cache/keybroker/run');
  expect(relativePathVariables(env, 'linux')).toEqual(['XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'KEYBROKER_CONFIG', 'KEYBROKER_RUNTIME_DIR']);
  expect(userCacheDir({ HOME: '/home/alice', KEYBROKER_CACHE_DIR: '/abs/cache' }, 'linux')).toBe('/abs/cache');
});

/** A stat as the OS reports it: a regular file unless said otherwise. */
function statOf(fields: { type?: 'file' | 'folder' | 'fifo' | 'link' | 'socket'; uid?: number; mode: number }): fs.Stats {
  const type = fields.type ?? 'file';
  return {
    uid: fields.uid ?? process.getuid?.(),
    mode: fields.mode,
    isFile: () => type === 'file',
    isDirectory: () => type === 'folder',
    isFIFO: () => type === 'fifo',
    isSymbolicLink: () => type === 'link',
  } as fs.Stats;
}

describe('privateStatProblem: what may hold private data', () => {
  it('accepts a file or folder of this user that only this user can write, whatever others may read', () => {
    expect(privateStatProblem(statOf({ mode: 0o100600 }), 'file', 'linux')).toBeUndefined();
    expect(privateStatProblem(statOf({ mode: 0o100644 }), 'file', 'linux')).toBeUndefined();
    expect(privateStatProblem(statOf({ type: 'folder', mode: 0o40755 }), 'folder', 'linux')).toBeUndefined();
  });

  it('names what is wrong with the kind of thing at the path', () => {
    expect(privateStatProblem(statOf({ type: 'fifo', mode: 0o600 }), 'file')).toBe('is a FIFO, not a regular file');
    expect(privateStatProblem(statOf({ type: 'link', mode: 0o777 }), 'file')).toBe('is a symbolic link');
    expect(privateStatProblem(statOf({ type: 'socket', mode: 0o600 }), 'file')).toBe('is not a regular file');
    expect(privateStatProblem(statOf({ type: 'folder', mode: 0o700 }), 'file')).toBe('is not a regular file');
    expect(privateStatProblem(statOf({ type: 'file', mode: 0o600 }), 'folder')).toBe('is not a folder');
  });

  it('refuses what others can write (group or world), with its permission bits', () => {
    expect(privateStatProblem(statOf({ mode: 0o100620 }), 'file', 'linux')).toBe('can be written by other users (mode 620)');
    expect(privateStatProblem(statOf({ mode: 0o100602 }), 'file', 'linux')).toBe('can be written by other users (mode 602)');
    expect(privateStatProblem(statOf({ type: 'folder', mode: 0o40777 }), 'folder', 'darwin')).toBe(
      'can be written by other users (mode 777)',
    );
  });

  it('does not judge mode bits on Windows, where they say nothing about who can write', () => {
    expect(privateStatProblem(statOf({ mode: 0o100666 }), 'file', 'win32')).toBeUndefined();
  });

  it("refuses another user's file, and root's only where root may own it (a trust root)", () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    expect(privateStatProblem(statOf({ uid: 4242, mode: 0o600 }), 'file', 'linux')).toBe('belongs to another user (uid 4242)');
    expect(privateStatProblem(statOf({ uid: 0, mode: 0o600 }), 'file', 'linux')).toBe('belongs to another user (uid 0)');
    expect(privateStatProblem(statOf({ uid: 0, mode: 0o600 }), 'file', 'linux', { rootMayOwn: true })).toBeUndefined();
    expect(privateStatProblem(statOf({ uid: 4242, mode: 0o600 }), 'file', 'linux', { rootMayOwn: true })).toBe(
      'belongs to another user (uid 4242)',
    );
    expect(privateStatProblem(statOf({ uid: 1000, mode: 0o600 }), 'file', 'linux')).toBeUndefined();
  });

  it('does not judge the owner where the system has no user ids (Windows)', () => {
    const getuid = process.getuid;
    process.getuid = undefined;
    try {
      expect(privateStatProblem(statOf({ uid: 4242, mode: 0o600 }), 'file', 'win32')).toBeUndefined();
    } finally {
      process.getuid = getuid;
    }
  });

  it('lets a trust root sit in a sticky shared folder such as /tmp, never in a shared folder that is not sticky', () => {
    const sticky = statOf({ type: 'folder', mode: 0o41777 });
    expect(privateStatProblem(sticky, 'folder', 'linux', { stickyFolderMayBeShared: true })).toBeUndefined();
    expect(privateStatProblem(sticky, 'folder', 'linux')).toBe('can be written by other users (mode 777)');
    expect(privateStatProblem(statOf({ type: 'folder', mode: 0o40777 }), 'folder', 'linux', { stickyFolderMayBeShared: true })).toBe(
      'can be written by other users (mode 777)',
    );
    // The sticky bit on a file means nothing: others can still rewrite it.
    expect(privateStatProblem(statOf({ mode: 0o101666 }), 'file', 'linux', { stickyFolderMayBeShared: true })).toBe(
      'can be written by other users (mode 666)',
    );
  });
});

it('throws other open errors as they are (a path through a file), and leaves no descriptor open when it refuses a file', () => {
  const dir = scratch();
  fs.writeFileSync(path.join(dir, 'file'), 'text', { mode: 0o600 });
  expect(() => readPrivateFile(path.join(dir, 'file', 'below'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  fs.writeFileSync(path.join(dir, 'open'), 'text', { mode: 0o666 });
  fs.chmodSync(path.join(dir, 'open'), 0o666);
  const open = fs.readdirSync('/proc/self/fd').length;
  for (let time = 0; time < 3; time++) expect(problemOf(path.join(dir, 'open'))).toBe('can be written by other users (mode 666)');
  for (let time = 0; time < 3; time++) expect(readPrivateFile(path.join(dir, 'file'))).toBe('text');
  expect(fs.readdirSync('/proc/self/fd').length).toBe(open);
});

it('refuses a link on systems whose O_NOFOLLOW answers EMLINK (FreeBSD) or EFTYPE (macOS)', () => {
  for (const code of ['EMLINK', 'EFTYPE']) {
    vi.spyOn(fs, 'openSync').mockImplementationOnce(() => {
      throw Object.assign(new Error(code), { code });
    });
    expect(problemOf('/any/link')).toBe('is a symbolic link');
  }
});

describe('readTrustRoot: a config file, judged as OpenSSH judges its config', () => {
  const failureOf = (file: string, platform?: NodeJS.Platform) => {
    try {
      readTrustRoot(file, platform);
      return undefined;
    } catch (error) {
      if (!(error instanceof UnsafeFile)) throw error;
      return { file: error.file, problem: error.problem, message: error.message };
    }
  };
  /** dir/shared (mode 777, not sticky)/team/config.json: the file is fine, a folder two levels up is not. */
  function sharedFolderConfig() {
    const dir = scratch();
    const shared = path.join(dir, 'shared');
    fs.mkdirSync(path.join(shared, 'team'), { recursive: true, mode: 0o700 });
    fs.chmodSync(shared, 0o777);
    const file = path.join(shared, 'team', 'config.json');
    fs.writeFileSync(file, '{}', { mode: 0o600 });
    return { dir, shared, file };
  }

  it('reads a private config, says undefined when there is none, and throws other open errors as they are', () => {
    const dir = scratch();
    fs.writeFileSync(path.join(dir, 'config.json'), '{"profiles":{}}', { mode: 0o644 });
    expect(readTrustRoot(path.join(dir, 'config.json'))).toBe('{"profiles":{}}');
    expect(readTrustRoot(path.join(dir, 'absent.json'))).toBeUndefined();
    expect(() => readTrustRoot(path.join(dir, 'config.json', 'below'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });

  it('refuses a config others can write, or a FIFO (at once), naming the file', () => {
    const dir = scratch();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, '{}');
    fs.chmodSync(file, 0o666);
    expect(failureOf(file)).toEqual({
      file,
      problem: 'can be written by other users (mode 666)',
      message: `${file} can be written by other users (mode 666)`,
    });
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    expect(failureOf(path.join(dir, 'fifo'))?.problem).toBe('is a FIFO, not a regular file');
  });

  it('refuses a config in a folder others can write, however far up, naming that folder', () => {
    const { shared, file } = sharedFolderConfig();
    expect(failureOf(file)).toEqual({
      file: shared,
      problem: 'can be written by other users (mode 777)',
      message: `${shared} can be written by other users (mode 777)`,
    });
  });

  it('accepts a config in a sticky shared folder, such as one under /tmp', () => {
    const { shared, file } = sharedFolderConfig();
    fs.chmodSync(shared, 0o1777);
    expect(readTrustRoot(file)).toBe('{}');
  });

  it('follows a link and judges the folders of its target, with or without /proc', () => {
    const { dir, shared, file } = sharedFolderConfig();
    fs.symlinkSync(file, path.join(dir, 'config.json'));
    expect(failureOf(path.join(dir, 'config.json'))?.file).toBe(shared);
    const readlink = fs.readlinkSync;
    vi.spyOn(fs, 'readlinkSync').mockImplementation(((link: string) => {
      if (link.startsWith('/proc/self/fd/')) throw Object.assign(new Error('no /proc'), { code: 'ENOENT' });
      return readlink(link);
    }) as typeof fs.readlinkSync);
    expect(failureOf(path.join(dir, 'config.json'))?.file).toBe(shared);
    fs.chmodSync(shared, 0o755);
    expect(readTrustRoot(path.join(dir, 'config.json'))).toBe('{}');
  });

  it("accepts root's config and folders for another user, and refuses a third user's", () => {
    const dir = scratch();
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, '{}', { mode: 0o644 });
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    // Everything here belongs to root (the tests run as root): the file, the scratch folder, /tmp and /.
    expect(readTrustRoot(file)).toBe('{}');
    fs.chownSync(file, 65534, 65534);
    expect(failureOf(file)?.problem).toBe('belongs to another user (uid 65534)');
  });

  it('judges neither mode bits nor folders on Windows', () => {
    const { shared, file } = sharedFolderConfig();
    fs.chmodSync(file, 0o666);
    fs.chownSync(shared, 65534, 65534);
    expect(readTrustRoot(file, 'win32')).toBe('{}');
  });

  it('judges the folders of the file it opened, not of a second lookup of the name (which a swap could change)', () => {
    const { dir, shared, file } = sharedFolderConfig();
    fs.chmodSync(shared, 0o755);
    vi.spyOn(fs, 'realpathSync').mockReturnValue(path.join(dir, 'elsewhere', 'config.json'));
    expect(readTrustRoot(file)).toBe('{}');
  });

  it('leaves no descriptor open, read or refused', () => {
    const { file } = sharedFolderConfig();
    const open = fs.readdirSync('/proc/self/fd').length;
    for (let time = 0; time < 3; time++) expect(failureOf(file)?.problem).toBe('can be written by other users (mode 777)');
    expect(fs.readdirSync('/proc/self/fd').length).toBe(open);
  });
});
