// Part src/cache/: where keys are kept between runs: keychain, private file, or none. May use: kernel, providers, secret, config, loader.
// Where keys are kept between runs: the OS keychain, a private file, or nowhere.

export type CacheBackendKind = 'keychain' | 'file' | 'none';

export interface CacheStore {
  /** What actually holds the data; for `auto`, what it settled on. */
  readonly kind: CacheBackendKind;
  /**
   * True when the profile named this backend ("backend": "keychain"): then a CacheUnavailable is
   * the command's failure (exit 9), not a warning before reading the store without a cache.
   */
  readonly required?: boolean;
  /** The stored text, or undefined when there is none. Throws CacheUnavailable. */
  read(account: string): Promise<string | undefined>;
  write(account: string, data: string): Promise<void>;
  /** True when something was removed. */
  remove(account: string): Promise<boolean>;
}

export const noCache: CacheStore = {
  kind: 'none',
  read: async () => undefined,
  write: async () => {},
  remove: async () => false,
};

/** The keychain item name every keybroker entry is stored under (with the account as the user). */
export const KEYCHAIN_SERVICE = 'keybroker';
