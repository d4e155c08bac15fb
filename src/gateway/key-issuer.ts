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
  /** A new key for `user`. */
  mint(user: string): Promise<MintedKey>;
  /**
   * A new key replacing `oldKey`, the old one still accepted for `graceMs` (0: refused at once).
   * Undefined when the gateway does not know `oldKey` (then mint instead).
   */
  regenerate(oldKey: string, user: string, graceMs: number): Promise<MintedKey | undefined>;
  /** The gateway refuses these keys from now on. False when it did not know them (not an error). */
  revoke(keys: string[]): Promise<boolean>;
}

export interface IssuerContext {
  env: NodeJS.ProcessEnv;
  /** The profile allows plain http:// to another host; otherwise the master key never goes there. */
  allowInsecureHttp?: boolean;
  timeoutMs: number;
  fetch?: typeof fetch;
}
