// An in-memory @napi-rs/keyring for the keychain cache's unit tests: items by service and
// account, the options each entry was opened with, and a way to make calls fail or never return.
import type { Keyring } from '../../src/cache/keychain.ts';

export interface MemoryKeyring {
  /** `service/account` → password. */
  items: Map<string, string>;
  /** The Linux options of every entry opened. */
  opened: unknown[];
  /** Makes every later call throw this. */
  fail: unknown;
  /** Makes every later call wait this long before answering (Infinity: never answers). */
  delayMs: number;
  module(): Promise<Keyring>;
}

export function memoryKeyring(): MemoryKeyring {
  const keyring: MemoryKeyring = {
    items: new Map(),
    opened: [],
    fail: undefined,
    delayMs: 0,
    module: async () => binding,
  };
  async function answer<T>(value: () => T): Promise<T> {
    if (keyring.delayMs === Infinity) return new Promise<T>(() => {});
    if (keyring.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, keyring.delayMs));
    if (keyring.fail !== undefined) throw keyring.fail;
    return value();
  }
  class AsyncEntry {
    readonly name: string;
    constructor(service: string, account: string, options: unknown) {
      this.name = `${service}/${account}`;
      keyring.opened.push(options);
    }
    getPassword = () => answer(() => keyring.items.get(this.name) ?? null);
    setPassword = (password: string) => answer(() => void keyring.items.set(this.name, password));
    deleteCredential = () => answer(() => keyring.items.delete(this.name));
  }
  const binding: Keyring = {
    AsyncEntry,
    findCredentialsAsync: (service) =>
      answer(() =>
        [...keyring.items.keys()]
          .filter((name) => name.startsWith(`${service}/`))
          .map((name) => ({ account: name.slice(service.length + 1) })),
      ),
  };
  return keyring;
}
