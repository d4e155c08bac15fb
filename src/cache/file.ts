// Plaintext cache for machines without a keychain: one 0600 file per entry in a 0700 folder.
import fs from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '../kernel/sha256.ts';
import { CacheUnavailable } from '../kernel/errors.ts';
import { describeErrno, fixForErrno, makePrivateDir, shortPath, unusableFolder } from '../kernel/paths.ts';
import { UnsafeFile, readPrivateFile } from '../kernel/private-file.ts';
import { removeStaleTemps, writeFileAtomic } from '../kernel/temp-files.ts';
import type { CacheStore } from './cache-store.ts';

/** What every file of the file cache is named like: an entry, or a write that never finished. */
export const CACHE_FILE_PATTERN = /^[0-9a-f]{24}\.json(\.\d+\.tmp)?$/;

export function fileCache(dir: string): CacheStore {
  const fileOf = (account: string) => path.join(dir, `${sha256Hex(account).slice(0, 24)}.json`);

  /** A folder that cannot hold private files, for a read (nothing is created) or, with `create`, a write. */
  function checkDir(create: boolean): void {
    // The cache folder and its keys folder must both be this user's own.
    const problem = create ? (makePrivateDir(path.dirname(dir)) ?? makePrivateDir(dir)) : unusableFolder(dir);
    if (problem)
      throw new CacheUnavailable(
        `the cache folder cannot be used: ${shortPath(problem, 300)}`,
        'set KEYBROKER_CACHE_DIR to a private folder of yours',
      );
  }

  return {
    kind: 'file',
    async read(account) {
      // A relative folder would be the repository's: its files choose no key.
      checkDir(false);
      const file = fileOf(account);
      try {
        // Only a regular file of this user that no one else can write is read; a FIFO does not block.
        return readPrivateFile(file);
      } catch (error) {
        if (error instanceof UnsafeFile) {
          throw new CacheUnavailable(
            `the cache file ${shortPath(file)} ${error.problem}: not used`,
            'nothing to do: keybroker reads the store and replaces it',
          );
        }
        // A path over the system's limit cannot be read or written: the write says so, once.
        if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') return undefined;
        throw new CacheUnavailable(
          `cannot read the cache file ${shortPath(file)} (${describeErrno(error)})`,
          fixForErrno(error, 'KEYBROKER_CACHE_DIR'),
        );
      }
    },
    async write(account, data) {
      const target = fileOf(account);
      if (target.length >= 4_096) {
        throw new CacheUnavailable(
          `the cache folder's path is too long (${dir.length} characters)`,
          'set KEYBROKER_CACHE_DIR to a shorter folder',
        );
      }
      checkDir(true);
      // A writer killed between its write and its rename left a plaintext key: gone at the next write.
      removeStaleTemps(dir, (name) => CACHE_FILE_PATTERN.test(name));
      try {
        writeFileAtomic(target, data, 0o600);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENAMETOOLONG') {
          throw new CacheUnavailable(
            `the cache folder's path is too long (${dir.length} characters)`,
            'set KEYBROKER_CACHE_DIR to a shorter folder',
          );
        }
        throw new CacheUnavailable(
          `cannot write the cache file ${shortPath(target)} (${describeErrno(error)})`,
          fixForErrno(error, 'KEYBROKER_CACHE_DIR'),
        );
      }
    },
    async remove(account) {
      try {
        fs.unlinkSync(fileOf(account));
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw new CacheUnavailable(
          `cannot remove the cache file ${shortPath(fileOf(account))} (${describeErrno(error)})`,
          'remove it by hand',
        );
      }
    },
  };
}

/**
 * Removes every file of the file cache in `dir` (entries of any profile, including profiles whose
 * store, secret, field or user changed since, and writes that never finished). The names removed.
 */
export function removeAllCacheFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new CacheUnavailable(`cannot list the cache folder ${shortPath(dir)} (${describeErrno(error)})`, 'remove its files by hand');
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!CACHE_FILE_PATTERN.test(name)) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
      removed.push(name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new CacheUnavailable(
        `cannot remove the cache file ${shortPath(path.join(dir, name))} (${describeErrno(error)})`,
        'remove it by hand',
      );
    }
  }
  return removed;
}
