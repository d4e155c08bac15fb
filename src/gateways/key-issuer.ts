// A gateway's key-management API, as admin commands use it: mint a key for a developer, rotate
// one with a grace period, delete one. One file per gateway (src/gateways/<type>.ts).
import type { KeyIssuerConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { createLiteLlmIssuer } from './litellm.ts';

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
  timeoutMs: number;
  fetch?: typeof fetch;
}

export function openKeyIssuer(config: KeyIssuerConfig | undefined, context: IssuerContext): KeyIssuer {
  if (!config) {
    throw new ConfigError(
      'no gateway key API is configured in the profile',
      'add "keyIssuer": {"type": "litellm", "url": "https://…", "masterKeyEnv": "LITELLM_MASTER_KEY"}, or pass the new key on stdin/--from-file',
    );
  }
  switch (config.type) {
    case 'litellm':
      return createLiteLlmIssuer(config, context);
  }
}
