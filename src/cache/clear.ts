// Removing cached keys from every place a profile's key may be: the keychain and the file cache
// (`auto` with "fallback": "file" may have used either), including what earlier settings of the
// profile left (its cache name changes when its store, secret, field or user does) and writes
// that never finished.
import fs from 'node:fs';
import path from 'node:path';
import type { Profile } from '../config/config.ts';
import { CacheUnavailable } from '../kernel/errors.ts';
import { knownCacheAccount } from './account.ts';
import { osLoginName } from '../kernel/login-name.ts';
import { fileCache, removeAllCacheFiles, CACHE_FILE_PATTERN } from './file.ts';
import { keychainCache, type KeychainCache } from './keychain.ts';
import { keyFilesDir } from '../kernel/paths.ts';
import { sha256Hex } from '../kernel/sha256.ts';

export interface ClearResult {
  /** account → the caches it was removed from. */
  removed: Map<string, string[]>;
  /** Entries of no current profile (earlier settings, removed profiles) and unfinished writes that were removed too. */
  leftovers: number;
}

export interface ClearOptions {
  /** The entries of a profile to remove (default its cached key); `keybroker logout` adds the refresh token's. */
  accountsOf?: (profile: Profile) => string[];
  /**
   * Also sweep leftovers (`cache clear`): `everything`, every other keybroker entry (--all);
   * otherwise the entries no configured profile uses any more (`current` lists the accounts still
   * in use, refresh tokens included) and the profiles' own earlier entries in the keychain.
   */
  sweep?: { everything: boolean; current: string[] };
}

/** Removes the profiles' cached entries, and with `sweep` what no profile uses any more. */
export async function clearCachedKeys(profiles: Profile[], env: NodeJS.ProcessEnv, debug: (message: string) => void, options: ClearOptions = {}): Promise<ClearResult> {
  const accountsOf = options.accountsOf ?? ((profile: Profile) => [knownCacheAccount(profile, () => osLoginName(env))].filter((account) => account !== undefined));
  const removed = new Map<string, string[]>();
  const dir = keyFilesDir(env);
  const files = fileCache(dir);
  let keychain: KeychainCache | undefined;
  let keychainUsable = false;
  for (const [profile, account] of profiles.flatMap((profile) => accountsOf(profile).map((account) => [profile, account] as const))) {
    const where: string[] = [];
    if (await files.remove(account)) where.push('the file cache');
    if (profile.cache.backend === 'auto' || profile.cache.backend === 'keychain') {
      keychain ??= keychainCache({ env });
      try {
        if (await keychain.remove(account)) where.push('the keychain');
        keychainUsable = true;
      } catch (error) {
        // Only an explicit keychain backend makes an unusable keychain an error here.
        if (!(error instanceof CacheUnavailable) || profile.cache.backend === 'keychain') throw error;
        debug(`keychain not usable, nothing to remove there: ${error.message}`);
      }
    }
    removed.set(account, where);
  }

  const scope = options.sweep;
  if (!scope) return { removed, leftovers: 0 };
  // The file cache names a file by its account's hash: what no current account hashes to is a leftover.
  const inUse = new Set(scope.current.map((account) => `${sha256Hex(account).slice(0, 24)}.json`));
  let leftovers = 0;
  if (scope.everything) leftovers += removeAllCacheFiles(dir).length;
  else {
    for (const name of listCacheFiles(dir)) {
      if (inUse.has(name)) continue;
      try {
        fs.unlinkSync(path.join(dir, name));
        leftovers++;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new CacheUnavailable(`cannot remove the cache file ${path.join(dir, name)} (${(error as NodeJS.ErrnoException).code})`, 'remove it by hand');
      }
    }
  }

  if (keychain && keychainUsable) {
    const names = new Set(profiles.map((profile) => profile.name));
    const current = new Set(scope.current);
    const configured = new Set(scope.current.map((account) => account.slice(0, account.lastIndexOf(':'))));
    try {
      for (const account of await keychain.accounts()) {
        if (removed.has(account) || (!scope.everything && current.has(account))) continue;
        const profileName = account.slice(0, account.lastIndexOf(':'));
        // Another configured profile's earlier entries are its own `cache clear`'s business.
        if (!scope.everything && !names.has(profileName) && configured.has(profileName)) continue;
        if (await keychain.remove(account)) leftovers++;
      }
    } catch (error) {
      debug(`could not list the keychain's keybroker items: ${(error as Error).message}`);
    }
  }
  return { removed, leftovers };
}

function listCacheFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((name) => CACHE_FILE_PATTERN.test(name));
  } catch {
    return [];
  }
}
