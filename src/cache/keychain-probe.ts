// Is there a keychain on this machine? `config init` asks once, so a headless machine (SSH, WSL,
// a container) gets a file that says what it does instead of reading the store on every call.
import { CacheUnavailable } from '../kernel/errors.ts';
import type { CacheStore } from './cache-store.ts';
import { keychainCache } from './keychain.ts';
import { plainKeychainReason } from './select.ts';

/** Undefined when the keychain answers a read; otherwise why not, in plain words. */
export async function missingKeychain(env: NodeJS.ProcessEnv, keychain: CacheStore = keychainCache({ env })): Promise<string | undefined> {
  try {
    // Stryker disable next-line StringLiteral: equivalent, any account answers the probe; nothing read is used
    await keychain.read('keybroker-probe');
    return undefined;
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    return plainKeychainReason(error.message);
  }
}
