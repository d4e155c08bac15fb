// The file cache: one 0600 file per entry in a 0700 folder, named by the account's hash; what it
// refuses to read, what each failure says to do, and what `cache clear --all` removes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileCache, removeAllCacheFiles } from '../../src/cache/file.ts';
import { cacheFailure } from './cache-failure.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';

let root: string;
let dir: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-file-'));
  dir = path.join(root, 'cache', 'keys');
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const nameOf = (account: string) => `${sha256Hex(account).slice(0, 24)}.json`;
const mode = (file: string) => fs.statSync(file).mode & 0o777;

/** An absolute folder under `root` whose path is exactly `length` characters (components under the 255 limit). */
function folderOfLength(length: number): string {
  let folder = root;
  while (folder.length < length) folder = path.join(folder, 'd'.repeat(Math.min(200, length - folder.length - 1)));
  expect(folder.length).toBe(length);
  return folder;
}

describe('the file cache', () => {
  it("writes each entry as a 0600 file named by the account's hash, in 0700 folders it creates", async () => {
    const cache = fileCache(dir);
    expect(cache.kind).toBe('file');
    await cache.write('default:abc', 'data');
    expect(fs.readdirSync(dir)).toEqual([nameOf('default:abc')]);
    expect(mode(path.join(dir, nameOf('default:abc')))).toBe(0o600);
    expect(mode(dir)).toBe(0o700);
    expect(mode(path.dirname(dir))).toBe(0o700);
    expect(await cache.read('default:abc')).toBe('data');
    expect(await cache.read('default:other')).toBeUndefined();
    expect(await cache.remove('default:abc')).toBe(true);
    expect(await cache.remove('default:abc')).toBe(false);
  });

  it('a read creates no folder', async () => {
    expect(await fileCache(dir).read('default:abc')).toBeUndefined();
    expect(fs.existsSync(path.dirname(dir))).toBe(false);
  });

  it('a file others can write is not used: the store is read and the file replaced', async () => {
    const cache = fileCache(dir);
    await cache.write('default:abc', 'planted');
    fs.chmodSync(path.join(dir, nameOf('default:abc')), 0o666);
    const error = await cacheFailure(cache.read('default:abc'));
    expect(error.line()).toBe(
      `the cache file ${path.join(dir, nameOf('default:abc'))} can be written by other users (mode 666): not used: nothing to do: keybroker reads the store and replaces it`,
    );
    await cache.write('default:abc', 'fresh');
    expect(await cache.read('default:abc')).toBe('fresh');
  });

  it('a folder that cannot hold private files is refused, for a read and a write, with the fix', async () => {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(dir, 'not a folder');
    const error = await cacheFailure(fileCache(dir).write('default:abc', 'data'));
    expect(error.line()).toBe(
      `the cache folder cannot be used: cannot create ${dir} (EEXIST): set KEYBROKER_CACHE_DIR to a private folder of yours`,
    );
    expect((await cacheFailure(fileCache('/proc/keybroker/keys').read('default:abc'))).message).toBe(
      'the cache folder cannot be used: /proc/keybroker/keys is under /proc',
    );
  });

  it('a read that fails otherwise names the file, the error and the fix', async () => {
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'cache'), '');
    const error = await cacheFailure(fileCache(dir).read('default:abc'));
    expect(error.line()).toBe(
      `cannot read the cache file ${path.join(dir, nameOf('default:abc'))} (ENOTDIR): check the folder's permissions or set KEYBROKER_CACHE_DIR to a private folder`,
    );
  });

  it("a path over the system's limit: a read finds nothing, a write says to use a shorter folder and creates nothing", async () => {
    const overlong = path.join(root, 'x'.repeat(300), 'keys');
    expect(await fileCache(overlong).read('default:abc')).toBeUndefined();
    // The entry's path would be exactly 4096 characters: refused before any folder is made.
    const atLimit = folderOfLength(4_096 - nameOf('a').length - 1);
    const error = await cacheFailure(fileCache(atLimit).write('default:abc', 'data'));
    expect(error.line()).toBe(
      `the cache folder's path is too long (${atLimit.length} characters): set KEYBROKER_CACHE_DIR to a shorter folder`,
    );
    expect(fs.existsSync(atLimit)).toBe(false);
    // Just under it, the system's own limit says the same (the temp file's name is longer).
    const underLimit = folderOfLength(4_090 - nameOf('a').length - 1);
    expect((await cacheFailure(fileCache(underLimit).write('default:abc', 'data'))).line()).toBe(
      `the cache folder's path is too long (${underLimit.length} characters): set KEYBROKER_CACHE_DIR to a shorter folder`,
    );
  });

  it('a write that fails otherwise names the file, the error and the fix', async () => {
    fs.mkdirSync(path.join(dir, nameOf('default:abc')), { recursive: true });
    const error = await cacheFailure(fileCache(dir).write('default:abc', 'data'));
    expect(error.line()).toBe(
      `cannot write the cache file ${path.join(dir, nameOf('default:abc'))} (EISDIR): check the folder's permissions or set KEYBROKER_CACHE_DIR to a private folder`,
    );
  });

  it('a remove that fails says to remove it by hand', async () => {
    fs.mkdirSync(path.join(dir, nameOf('default:abc')), { recursive: true });
    const error = await cacheFailure(fileCache(dir).remove('default:abc'));
    expect(error.line()).toBe(`cannot remove the cache file ${path.join(dir, nameOf('default:abc'))} (EISDIR): remove it by hand`);
  });

  it("a write removes what a killed writer left (a plaintext key), and only the cache's own temps", async () => {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const killed = `${nameOf('default:other')}.999999999.tmp`;
    fs.writeFileSync(path.join(dir, killed), 'sk-test-left-behind', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'notes.json.999999999.tmp'), 'not ours', { mode: 0o600 });
    await fileCache(dir).write('default:abc', 'data');
    expect(fs.readdirSync(dir).sort()).toEqual([nameOf('default:abc'), 'notes.json.999999999.tmp'].sort());
  });
});

describe('removing every file of the file cache (cache clear --all)', () => {
  it('removes entries and unfinished writes of any account, nothing else, and names what it removed', () => {
    fs.mkdirSync(dir, { recursive: true });
    const entry = nameOf('default:abc');
    const temp = `${nameOf('work:def')}.12345.tmp`;
    const others = [
      `x${entry}`,
      `${entry}.bak`,
      `${entry}.tmp`,
      `${entry}.12a.tmp`,
      `${'a'.repeat(23)}.json`,
      `${'g'.repeat(24)}.json`,
      `${'A'.repeat(24)}.json`,
    ];
    for (const name of [entry, temp, ...others]) fs.writeFileSync(path.join(dir, name), '');
    expect(removeAllCacheFiles(dir).sort()).toEqual([entry, temp].sort());
    expect(fs.readdirSync(dir).sort()).toEqual(others.sort());
  });

  it('no folder: nothing to remove; a folder that cannot be listed or a file that cannot be removed: CacheUnavailable with the fix', () => {
    expect(removeAllCacheFiles(dir)).toEqual([]);
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.writeFileSync(dir, '');
    expect(() => removeAllCacheFiles(dir)).toThrow(
      expect.objectContaining({ message: `cannot list the cache folder ${dir} (ENOTDIR)`, fix: 'remove its files by hand' }),
    );
    fs.rmSync(dir);
    fs.mkdirSync(path.join(dir, nameOf('default:abc')), { recursive: true });
    expect(() => removeAllCacheFiles(dir)).toThrow(
      expect.objectContaining({
        message: `cannot remove the cache file ${path.join(dir, nameOf('default:abc'))} (EISDIR)`,
        fix: 'remove it by hand',
      }),
    );
  });
});
