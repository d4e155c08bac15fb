// Plaintext cache for machines without a keychain: one 0600 file per entry in a 0700 folder.
import fs from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '../kernel/sha256.ts';
import { CacheUnavailable } from '../kernel/errors.ts';
import { makePrivateDir } from '../kernel/paths.ts';
import type { CacheStore } from './cache-store.ts';

export function fileCache(dir: string): CacheStore {
  const fileOf = (account: string) =>
    path.join(dir, `${sha256Hex(account).slice(0, 24)}.json`);

  function ensureDir(): void {
    const problem = makePrivateDir(dir);
    if (problem) throw new CacheUnavailable(`the cache folder cannot be used: ${problem}`, 'check its permissions or set KEYBROKER_CACHE_DIR to a private folder');
    try {
      const stat = fs.statSync(dir);
      if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
        throw new CacheUnavailable(`the cache folder ${dir} belongs to another user`, 'remove it or set KEYBROKER_CACHE_DIR');
      }
      if ((stat.mode & 0o077) !== 0 && process.platform !== 'win32') fs.chmodSync(dir, 0o700);
    } catch (error) {
      if (error instanceof CacheUnavailable) throw error;
      throw new CacheUnavailable(`cannot use the cache folder ${dir} (${(error as NodeJS.ErrnoException).code})`, 'check its permissions or set KEYBROKER_CACHE_DIR');
    }
  }

  return {
    kind: 'file',
    async read(account) {
      try {
        return fs.readFileSync(fileOf(account), 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw new CacheUnavailable(`cannot read the cache file ${fileOf(account)} (${(error as NodeJS.ErrnoException).code})`, 'run \'keybroker cache clear\'');
      }
    },
    async write(account, data) {
      ensureDir();
      const target = fileOf(account);
      const temp = `${target}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(temp, data, { mode: 0o600 });
        fs.renameSync(temp, target);
      } catch (error) {
        fs.rmSync(temp, { force: true });
        throw new CacheUnavailable(`cannot write the cache file ${target} (${(error as NodeJS.ErrnoException).code})`, 'check the folder\'s permissions or set KEYBROKER_CACHE_DIR');
      }
    },
    async remove(account) {
      try {
        fs.unlinkSync(fileOf(account));
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw new CacheUnavailable(`cannot remove the cache file ${fileOf(account)} (${(error as NodeJS.ErrnoException).code})`, 'remove it by hand');
      }
    },
  };
}
