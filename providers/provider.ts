// Part providers/: the stores, one file each behind this interface. May use: kernel.
// The one interface every store implements. A provider file imports its SDK at the top and is
// built into its own chunk, so nothing here may import an SDK.
import fs from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import type { StoreType } from './index.ts';
import { ConfigError, StoreUnreachable } from '../src/kernel/errors.ts';
import { markThrottled, type Pace } from '../src/kernel/retry.ts';

/** A profile's `store` section: the type, and the fields that type's provider validates (its `storeSchema`). */
export type StoreConfig = { type: StoreType; [field: string]: unknown };

/** Who the developer is to the store. */
export interface StoreIdentity {
  /** The name `{user}` resolves to with `"user": "store"` (IAM user or role session, UPN, e-mail, entity name). */
  user: string;
  /** The full principal, for diagnostics (an ARN, a UPN with tenant, a service account, a Vault entity id). */
  principal: string;
}

/** The current version of a secret, as read by a developer. */
export interface SecretValue {
  value: string;
  /** The store's own version id (AWS VersionId, Key Vault version, GCP version number, Vault KV version). */
  version: string;
  createdAt?: Date;
  /** An expiry the store itself keeps (Key Vault `expires`, GCP `expireTime`); the JSON `expires_at` is read elsewhere. */
  expiresAt?: Date;
}

/** One secret as an admin lists it: never its value. */
export interface SecretSummary {
  /** The logical name, as the profile's `secret` template produces it. */
  name: string;
  version?: string;
  createdAt?: Date;
  updatedAt?: Date;
  expiresAt?: Date;
  enabled: boolean;
  labels: Record<string, string>;
}

export interface WriteOptions {
  /** Labels/tags where the store has them (`managed-by: keybroker`, `keybroker-user: alice`). */
  labels: Record<string, string>;
  description?: string;
  /**
   * What a read just before this write found (import and rotate read the current value first):
   * `exists: true`, the read returned a value; `exists: false`, it answered SecretNotFound (which
   * includes a secret scheduled for deletion). A store may skip its own existence check with it,
   * and must still be right when the secret changed since (fall back to checking). Absent: it checks.
   */
  known?: { exists: boolean };
  /**
   * The idempotency token of this write (AWS ClientRequestToken): the same write sent again with
   * the same token and value is applied once. Stores without one write the same value again.
   */
  requestToken?: string;
}

export interface WriteResult {
  version: string;
  /** True when the secret did not exist before this write. */
  created: boolean;
}

export interface Provider {
  /** "AWS Secrets Manager (us-east-1, profile dev)": for messages, never a credential. */
  describe(): string;
  /** The exact command a developer runs to log in to this store ("aws sso login --profile dev"). */
  loginCommand(): string;
  /**
   * The interactive login `get` must never do (Vault's OIDC browser flow), for `keybroker login`.
   * Absent where the ecosystem's own CLI does it; `keybroker login` then prints loginCommand().
   */
  interactiveLogin?(io: { say(line: string): void; openBrowser(url: string): Promise<void> }): Promise<void>;
  whoami(): Promise<StoreIdentity>;
  /** The current version; throws SecretNotFound, AccessDenied, NotAuthenticated, StoreUnreachable. */
  readCurrent(name: string): Promise<SecretValue>;
  /** Adds a version (creating the secret when needed). */
  write(name: string, value: string, options: WriteOptions): Promise<WriteResult>;
  /** Every secret whose logical name starts with `prefix`, through the store's own paging. */
  list(prefix: string): AsyncIterable<SecretSummary>;
  /** Disables (soft, recoverable where the store allows) or, with purge, deletes for good. */
  revoke(name: string, options: { purge: boolean }): Promise<void>;
}

export interface ProviderContext {
  /** Bound on each call to the store, retries included. */
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
  /** The keybroker profile name, for messages. */
  profile: string;
  /** The profile allows plain http:// to another host (`"allowInsecureHttp": true`); otherwise a provider refuses it. */
  allowInsecureHttp?: boolean;
  debug(message: string): void;
  /** Told each time the store throttles a call (before the retry policy waits), for bulk admin actions to slow down. */
  onThrottle?(waitMs: number): void;
  /**
   * Bulk admin actions: every call to the store, each retry included, is sent through this (the
   * action's limiter: a slot under the store's learned rate, throttled calls sent again after the
   * wait). A provider passes it to withStoreRetry as `pace`.
   */
  paceCall?: Pace;
}

/** What each providers/<type>.ts exports. */
export interface ProviderModule {
  /** Validates the `store` object of a profile for this type (unknown fields are errors). */
  storeSchema: v.GenericSchema<unknown, StoreConfig>;
  createProvider(store: StoreConfig, context: ProviderContext): Provider;
  /**
   * The name the store keeps a logical secret under, where its naming rules need an escape
   * (Key Vault, Secret Manager); absent where the logical name is used as it is.
   */
  storageName?(logicalName: string): string;
}

/** What a provider's error mapping needs to say which call failed, where, and what to do. */
export interface FailedCall {
  /** The store's own name for the call ("GetSecretValue"). */
  what: string;
  secret: string | undefined;
  /** The provider's describe(). */
  where: string;
  loginFix: string;
  timeoutMs: number;
}

/** Socket error codes that mean the store could not be reached at all. */
export const NETWORK_ERROR_CODES = ['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'];

/** The call's time budget ran out (src/kernel/retry.ts), in the same words for every store. */
export function storeTimedOut(
  where: string,
  what: string,
  timeoutMs: number,
  fix = 'check your network or VPN, or raise "timeout" in the profile',
): StoreUnreachable {
  return new StoreUnreachable(`${where} did not answer ${what} within ${timeoutMs} ms`, fix);
}

/** The store still throttled when the retry policy gave up; `answer` is its own words ("HTTP 429: …"). */
export function storeThrottling(where: string, answer: string, fix = 'try again in a minute'): StoreUnreachable {
  return markThrottled(new StoreUnreachable(`${where} is throttling requests (${answer})`, fix));
}

/** A store's CA bundle setting: absolute, since Claude Code runs keybroker from any directory. */
export const caBundlePath = v.pipe(
  v.string(),
  v.check((file) => path.isAbsolute(file), 'must be an absolute path to a PEM file (Claude Code runs keybroker from any directory)'),
);

/** The PEM bundle a store's CA setting names (store.caFile, VAULT_CACERT…); a ConfigError naming that setting when unreadable. */
export function readCaBundle(file: string, setting: string, profile?: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    const where = profile ? ` in profile "${profile}"` : '';
    throw new ConfigError(
      `cannot read the CA bundle ${file} that ${setting}${where} names (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      `point ${setting} at a readable PEM file, or remove it`,
    );
  }
}

/** The claims of a JWT (no signature check: the store checks the token; keybroker only reads who it names). */
export function jwtClaims(token: string): Record<string, unknown> {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
