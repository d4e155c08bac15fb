// Part src/gateway/: the LLM gateway: does it accept a key, and its key API (LiteLLM). May use: kernel, config.
// A gateway's key-management API, as admin commands use it: mint a key for a developer, rotate
// one with a grace period, delete one. One file per gateway (src/gateway/<type>.ts), opened by issuers.ts.

export interface MintedKey {
  key: string;
  /** When the gateway will stop accepting it, if it said. */
  expiresAt?: Date;
}

export interface KeyIssuer {
  /** "LiteLLM at https://llm.example.com": for messages and the audit, never a credential. */
  describe(): string;
  /**
   * A new key for `user`, under `alias` (unique at the gateway; mintAlias makes one) so that a mint
   * whose answer was lost can be found and deleted with revokeAlias.
   */
  mint(user: string, alias?: string): Promise<MintedKey>;
  /**
   * The gateway stops accepting `key` after `graceMs` (0: at once). Called only once its successor
   * is stored, so no moment exists where the store holds a key the gateway refuses without a
   * grace, or the gateway honours a key the store does not hold. 'unknown': the gateway did not know it.
   * `key` may be the key or its hashed token (sha256 hex), which is all the audit log keeps.
   */
  retire(key: string, graceMs: number): Promise<'retired' | 'unknown'>;
  /** The gateway refuses these keys (or hashed tokens) from now on. False when it did not know them (not an error). */
  revoke(keys: string[]): Promise<boolean>;
  /**
   * Deletes every key the gateway holds for `user` that keybroker minted (every page of them):
   * offboarding, whatever the store holds. The number deleted.
   */
  revokeUser(user: string): Promise<number>;
  /** Deletes the keybroker key of `user` minted under `alias`, if the gateway made it: the number deleted (0 or 1). */
  revokeAlias(user: string, alias: string): Promise<number>;
}

export interface IssuerContext {
  env: NodeJS.ProcessEnv;
  /** The profile allows plain http:// to another host; otherwise the master key never goes there. */
  allowInsecureHttp?: boolean;
  timeoutMs: number;
  fetch?: typeof fetch;
}

/** A mint's alias: unique per attempt (LiteLLM refuses a live duplicate), and says whose key it is. */
export function mintAlias(user: string, now: number): string {
  return `keybroker-${user}-${new Date(now).toISOString().replace(/[-:]/g, '')}-${Math.random().toString(36).slice(2, 8)}`;
}
