// Opening a private file: only a regular file of this user that no one else can write, judged on
// the descriptor; a FIFO neither blocks nor counts, a link is not followed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { UnsafeFile, readPrivateFile } from '../../src/kernel/private-file.ts';
import { makePrivateDir, relativePathVariables, userCacheDir, userConfigPath, userRuntimeDir } from '../../src/kernel/paths.ts';

const dirs: string[] = [];
afterEach(() => {
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
