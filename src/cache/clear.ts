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
import { removeStaleTemps } from '../kernel/temp-files.ts';
import { addonsDir, isAddonFile } from '../loader/chunks.ts';
import { sha256Hex } from '../kernel/sha256.ts';

export interface ClearResult {
  /** account → the caches it was removed from. */
  removed: Map<string, string[]>;
  /** Entries of no current profile (earlier settings, removed profiles) and unfinished writes that were removed too. */
  leftovers: number;
  /** With `leaveUnusableKeychain`: why the keychain could not be opened; its entries were left. */
  keychainUnusable?: CacheUnavailable;
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
  /**
   * A keychain that cannot be opened (its addon cannot even be extracted on a full disk) leaves its
   * entries and is reported in the result, instead of failing a `"backend": "keychain"` profile.
   */
  leaveUnusableKeychain?: boolean;
  /** The keychain to clear (default the OS keychain); tests give one over an in-memory keyring. */
  keychain?: KeychainCache;
}

/**
 * Removes the profiles' cached entries, and with `sweep` what no profile uses any more. Everything
 * in files goes first, without the keychain: a keychain that cannot be opened stops nothing else.
 */
export async function clearCachedKeys(
  profiles: Profile[],
  env: NodeJS.ProcessEnv,
  debug: (message: string) => void,
  options: ClearOptions = {},
): Promise<ClearResult> {
  const accountsOf =
    options.accountsOf ??
    ((profile: Profile) => [knownCacheAccount(profile, () => osLoginName(env))].filter((account) => account !== undefined));
  const pairs = profiles.flatMap((profile) => accountsOf(profile).map((account) => [profile, account] as const));
  const removed = new Map<string, string[]>();
  const dir = keyFilesDir(env);
  const files = fileCache(dir);
  for (const [, account] of pairs) removed.set(account, (await files.remove(account)) ? ['the file cache'] : []);
  const leftovers = options.sweep ? sweepFiles(dir, env, options.sweep) : 0;

  const keychain = options.keychain ?? keychainCache({ env });
  let keychainUnusable: CacheUnavailable | undefined;
  for (const [profile, account] of pairs) {
    if (keychainUnusable || (profile.cache.backend !== 'auto' && profile.cache.backend !== 'keychain')) continue;
    try {
      if (await keychain.remove(account)) removed.get(account)!.push('the keychain');
    } catch (error) {
      // Only an explicit keychain backend makes an unusable keychain an error here (unless told to leave it).
      if (!(error instanceof CacheUnavailable) || (profile.cache.backend === 'keychain' && !options.leaveUnusableKeychain)) throw error;
      debug(`keychain not usable, nothing removed there: ${error.message}`);
      keychainUnusable = error;
    }
  }
  const result: ClearResult = { removed, leftovers };
  const usedKeychain = pairs.some(([profile]) => profile.cache.backend === 'auto' || profile.cache.backend === 'keychain');
  if (keychainUnusable) {
    if (pairs.some(([profile]) => profile.cache.backend === 'keychain')) result.keychainUnusable = keychainUnusable;
  } else if (options.sweep && usedKeychain) {
    result.leftovers += await sweepKeychain(keychain, profiles, removed, options.sweep, debug);
  }
  return result;
}

/** The file cache's entries no current account uses (every entry with `everything`), and unfinished writes of the cache and the addon. */
function sweepFiles(dir: string, env: NodeJS.ProcessEnv, scope: { everything: boolean; current: string[] }): number {
  // A killed extraction's temp is no one's: only a live extraction's young one is left.
  let leftovers = removeStaleTemps(addonsDir(env), isAddonFile).length;
  if (scope.everything) return leftovers + removeAllCacheFiles(dir).length;
  // The file cache names a file by its account's hash: what no current account hashes to is a leftover.
  const inUse = new Set(scope.current.map((account) => `${sha256Hex(account).slice(0, 24)}.json`));
  for (const name of listCacheFiles(dir)) {
    if (inUse.has(name)) continue;
    try {
      fs.unlinkSync(path.join(dir, name));
      leftovers++;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new CacheUnavailable(
          `cannot remove the cache file ${path.join(dir, name)} (${(error as NodeJS.ErrnoException).code})`,
          'remove it by hand',
        );
    }
  }
  return leftovers;
}

/** The keychain's keybroker entries of no current profile (every one with `everything`). */
async function sweepKeychain(
  keychain: KeychainCache,
  profiles: Profile[],
  removed: Map<string, string[]>,
  scope: { everything: boolean; current: string[] },
  debug: (message: string) => void,
): Promise<number> {
  const names = new Set(profiles.map((profile) => profile.name));
  const current = new Set(scope.current);
  const configured = new Set(scope.current.map((account) => account.slice(0, account.lastIndexOf(':'))));
  let leftovers = 0;
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
  return leftovers;
}

function listCacheFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir).filter((name) => CACHE_FILE_PATTERN.test(name));
  } catch {
    return [];
  }
}
