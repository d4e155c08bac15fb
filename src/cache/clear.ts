// Removing cached keys from every place a profile's key may be: the keychain and the file cache
// (`auto` with "fallback": "file" may have used either).
import type { Profile } from '../config/config.ts';
import { CacheUnavailable } from '../kernel/errors.ts';
import { cacheAccount } from './account.ts';
import { fileCache } from './file.ts';
import { keychainCache } from './keychain.ts';
import type { CacheStore } from './cache-store.ts';
import { keyFilesDir } from '../kernel/paths.ts';

/** account → the caches it was removed from. */
export async function clearCachedKeys(
  profiles: Profile[],
  env: NodeJS.ProcessEnv,
  debug: (message: string) => void,
  /** The entries of a profile to remove; `keybroker logout` adds the refresh token's. */
  accountsOf: (profile: Profile) => string[] = (profile) => [cacheAccount(profile)],
): Promise<Map<string, string[]>> {
  const removed = new Map<string, string[]>();
  const files = fileCache(keyFilesDir(env));
  let keychain: CacheStore | undefined;
  for (const [profile, account] of profiles.flatMap((profile) => accountsOf(profile).map((account) => [profile, account] as const))) {
    const where: string[] = [];
    if (await files.remove(account)) where.push('the file cache');
    if (profile.cache.backend === 'auto' || profile.cache.backend === 'keychain') {
      keychain ??= keychainCache({ env });
      try {
        if (await keychain.remove(account)) where.push('the keychain');
      } catch (error) {
        // Only an explicit keychain backend makes an unusable keychain an error here.
        if (!(error instanceof CacheUnavailable) || profile.cache.backend === 'keychain') throw error;
        debug(`keychain not usable, nothing to remove there: ${error.message}`);
      }
    }
    removed.set(account, where);
  }
  return removed;
}
