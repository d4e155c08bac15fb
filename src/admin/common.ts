// Part src/admin/: admin actions: put, import, rotate, revoke, list, policy, and their audit. May use: kernel, providers, secret, config, loader, gateway.
// What every admin command shares: where a developer's key lives, what is written there,
// where the key comes from (never argv), and the write that skips unchanged keys.
import fs from 'node:fs';
import type { Profile } from '../config/config.ts';
import { randomUUID } from 'node:crypto';
import {
  ConfigError,
  KeybrokerError,
  oneLine,
  SecretNotFound,
  StoreRefused,
  StoreUnreachable,
  UsageError,
  UnusableKey,
} from '../kernel/errors.ts';
import { keyProblem, parseSecretValue, rfc3339Time } from '../secret/value.ts';
import { maskSecrets, type Output } from '../kernel/output.ts';
import { sha256Hex } from '../kernel/sha256.ts';
import { userNameProblem } from '../secret/name.ts';
import type { KeyIssuer } from '../gateway/key-issuer.ts';
import type { Provider, SecretValue, WriteOptions, WriteResult } from '../../providers/provider.ts';
import type { AuditLog, AuditRecord } from './audit.ts';
import type { BulkOptions } from './bulk.ts';

export interface AdminDeps {
  provider: Provider;
  profile: Pick<Profile, 'secret' | 'field' | 'store' | 'cache'>;
  /** JSON with the key in `field` plus metadata, or the bare key. */
  valueFormat: 'json' | 'raw';
  now(): number;
  output: Output;
  audit: AuditLog;
  /** The admin as the store sees them (for created_by). */
  actor(): string;
  /** The gateway's key API, when the profile has one. */
  issuer?: KeyIssuer;
  /** Progress bars only on a terminal. */
  isTTY: boolean;
  /** Bulk actions: rows in flight at most (`--concurrency`), and the signal that interrupts them. */
  bulk?: BulkOptions;
  /** Bulk actions print one JSON summary instead of text. */
  json?: boolean;
}

const MANAGED_BY_LABEL = 'managed-by';
export const USER_LABEL = 'keybroker-user';
/** Unix seconds: a form every store's labels accept (GCP allows only [a-z0-9_-]). */
export const ROTATED_LABEL = 'keybroker-rotated';
export const EXPIRES_LABEL = 'keybroker-expires';

/** The secret that holds `user`'s key, or a UsageError naming why `user` cannot be used. */
export function secretNameFor(template: string, user: string): string {
  if (!template.includes('{user}')) {
    throw new ConfigError(
      `the profile's secret "${template}" has no {user}: every developer would share one key`,
      'set "secret" to a template such as "claude-code/keys/{user}"',
    );
  }
  const problem = userNameProblem(user);
  if (problem)
    throw new UsageError(
      `the user name ${JSON.stringify(user)} cannot be used in the secret name "${template}": ${problem}`,
      "give the developer's plain name, e.g. --user alice",
    );
  return template.replaceAll('{user}', user);
}

/** The part of the template before `{user}`: what `list` asks the store for. */
export function templatePrefix(template: string): string {
  const at = template.indexOf('{user}');
  return at < 0 ? template : template.slice(0, at);
}

/** The user a secret name belongs to under `template`, or undefined when it is not one of ours. */
export function userFromSecretName(template: string, name: string): string | undefined {
  const at = template.indexOf('{user}');
  if (at < 0) return undefined;
  const prefix = template.slice(0, at);
  const suffix = template.slice(at + '{user}'.length).replaceAll('{user}', '');
  if (!name.startsWith(prefix) || !name.endsWith(suffix) || name.length <= prefix.length + suffix.length) return undefined;
  const user = name.slice(prefix.length, name.length - suffix.length);
  return userNameProblem(user) ? undefined : user;
}

const KEY_PREFIX = /^(sk|sk-ant|sk-proj|pk|rk|key|token|api|ghp|gho|xox[abpr]|glpat|AKIA)[-_][A-Za-z0-9_-]{6,}$/i;

/** True for an argument that looks like a key rather than a name, path or duration. */
export function looksLikeKey(argument: string): boolean {
  if (KEY_PREFIX.test(argument)) return true;
  if (argument.length < 24 || fs.existsSync(argument)) return false;
  // Long hex, or a long mixed-case run with digits (base62/base64): random tokens. Lower-case
  // names with digits (UUIDs, role session names) are left alone.
  if (/^[0-9a-fA-F]{32,}$/.test(argument)) return true;
  return /^[A-Za-z0-9_\-+=]+$/.test(argument) && /\d/.test(argument) && /[a-z]/.test(argument) && /[A-Z]/.test(argument);
}

/** Refuses a key given on the command line: it is in the shell history and the process list now. */
export function refuseKeysInArguments(args: string[]): void {
  const index = args.findIndex(looksLikeKey);
  if (index >= 0) {
    throw new UsageError(
      `argument ${index + 1} looks like a key; keys are never taken from the command line (shell history, process list)`,
      'pipe it on stdin (printf %s "$KEY" | keybroker admin put --user NAME) or use --from-file FILE, and consider that key exposed',
    );
  }
}

/** The key from --from-file or stdin, trimmed as `get` trims it, refused with `get`'s rules. */
export function readKeyInput(text: string, where: string): string {
  const key = text.trim();
  const problem = keyProblem(key);
  if (problem)
    throw new UnusableKey(
      `the key from ${where} is not usable: ${problem}`,
      'give one token of printable ASCII (no spaces or line breaks)',
    );
  return key;
}

export function parseExpiry(text: string, where: string): Date {
  const date = rfc3339Time(text);
  if (!date) throw new UsageError(`${where} is not an RFC 3339 time`, 'write it like 2026-12-31T23:59:59Z');
  return date;
}

export interface KeyWrite {
  user: string;
  key: string;
  expiresAt?: Date;
}

export interface WriteOutcome {
  user: string;
  secret: string;
  version: string;
  /** created: a new secret; updated: a new version; unchanged: the same key was already current. */
  outcome: 'created' | 'updated' | 'unchanged';
}

/** The value stored for a key: what `get` parses back (src/secret/value.ts). */
function secretValue(deps: Pick<AdminDeps, 'valueFormat' | 'profile' | 'actor'>, write: KeyWrite, now: number): string {
  // A bare key cannot carry an expiry: that one value is written as JSON, which `get` reads too.
  if (deps.valueFormat === 'raw' && !write.expiresAt) return write.key;
  const value: Record<string, string> = { [deps.profile.field]: write.key };
  if (write.expiresAt) value['expires_at'] = write.expiresAt.toISOString().replace(/\.000Z$/, 'Z');
  value['created_at'] = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
  value['created_by'] = deps.actor();
  return JSON.stringify(value);
}

export interface StoredKey {
  key: string;
  version: string;
  expiresAt?: Date;
}

/** What one read of `secret` found: whether it exists (for the write after it), and its key when it holds a usable one. */
export interface StoredState {
  exists: boolean;
  current: StoredKey | undefined;
}

/** Reads `secret` once: SecretNotFound (none, or revoked) is `exists: false`; a value that is not a key is `current: undefined`. */
export async function readStored(deps: Pick<AdminDeps, 'provider' | 'profile'>, secret: string): Promise<StoredState> {
  let current: SecretValue;
  try {
    current = await deps.provider.readCurrent(secret);
  } catch (error) {
    if (error instanceof SecretNotFound) return { exists: false, current: undefined };
    throw error;
  }
  try {
    const parsed = parseSecretValue(current.value, deps.profile.field, `secret "${secret}"`);
    return { exists: true, current: { ...parsed, version: current.version } };
  } catch (error) {
    if (error instanceof UnusableKey) return { exists: true, current: undefined };
    throw error;
  }
}

/** The key currently stored for `secret`, or undefined when there is none (or it is unusable). */
export async function currentKey(deps: Pick<AdminDeps, 'provider' | 'profile'>, secret: string): Promise<StoredKey | undefined> {
  return (await readStored(deps, secret)).current;
}

/** A store write whose outcome is unknown (no answer, sent again without one, and the store does not show it): it may still land. */
export class UnsettledWrite extends StoreUnreachable {}

/** Audit fields a caller adds to the write's lines: its step, and the hashed token of the key written. */
type WriteAudit = Pick<AuditRecord, 'gateway' | 'step' | 'token'>;

/**
 * Writes a new version unless the same key (and expiry) is already current; audits the intent before
 * the write (flushed) and its outcome after, failures included. `stored`: what a read just before
 * found (rotate reads first); absent, this reads. The write is told whether the secret exists, so a
 * store skips its own check (AWS: no DescribeSecret).
 */
export async function writeKey(
  deps: AdminDeps,
  write: KeyWrite,
  action: AuditRecord['action'],
  options: WriteAudit & { stored?: StoredState } = {},
): Promise<WriteOutcome> {
  const secret = secretNameFor(deps.profile.secret, write.user);
  const { stored: given, ...fields } = options;
  const extra = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as WriteAudit;
  const stored = given ?? (await readStoredAudited(deps, write.user, secret, action, extra));
  const current = stored.current;
  const expiry = (date: Date | undefined) => date?.getTime();
  if (current && current.key === write.key && expiry(current.expiresAt) === expiry(write.expiresAt)) {
    deps.audit.record({ action, user: write.user, secret, version: current.version, outcome: 'unchanged', ...extra });
    return { user: write.user, secret, version: current.version, outcome: 'unchanged' };
  }
  const now = deps.now();
  const labels: Record<string, string> = {
    [MANAGED_BY_LABEL]: 'keybroker',
    [USER_LABEL]: write.user,
    [ROTATED_LABEL]: String(Math.floor(now / 1000)),
  };
  if (write.expiresAt) labels[EXPIRES_LABEL] = String(Math.floor(write.expiresAt.getTime() / 1000));
  const request = {
    secret,
    value: secretValue(deps, write, now),
    key: write.key,
    options: {
      labels,
      description: `Claude Code gateway key of ${write.user} (keybroker)`,
      known: { exists: stored.exists },
      requestToken: randomUUID(),
    },
  };
  // The intent is on disk before the store is asked: a crash after it leaves a line, and a log that cannot be written stops here.
  deps.audit.record({
    action,
    user: write.user,
    secret,
    ...(current ? { version: current.version } : {}),
    outcome: 'intent: store write',
    ...extra,
  });
  let written: WriteResult;
  try {
    written = await settledWrite(deps, request);
  } catch (error) {
    const what = error instanceof UnsettledWrite ? 'unsettled: store write' : 'failed: store write';
    deps.audit.record({ action, user: write.user, secret, outcome: `${what}: ${errorLine(error)}`, ...extra });
    throw error;
  }
  const result: WriteOutcome = { user: write.user, secret, version: written.version, outcome: written.created ? 'created' : 'updated' };
  deps.audit.record({ action, user: write.user, secret, version: result.version, outcome: result.outcome, ...extra });
  return result;
}

async function readStoredAudited(
  deps: AdminDeps,
  user: string,
  secret: string,
  action: AuditRecord['action'],
  extra: WriteAudit,
): Promise<StoredState> {
  try {
    return await readStored(deps, secret);
  } catch (error) {
    deps.audit.record({ action, user, secret, outcome: `failed: store read: ${errorLine(error)}`, ...extra });
    throw error;
  }
}

/**
 * One write whose outcome is known. A refusal is final (nothing was written). No answer (a timeout,
 * a reset, a 5xx) may still have been applied: the same write is sent again (same value, same
 * idempotency token), then the store is read; UnsettledWrite when neither shows the key stored.
 */
async function settledWrite(
  deps: AdminDeps,
  request: { secret: string; value: string; key: string; options: WriteOptions },
): Promise<WriteResult> {
  const { secret, value, key, options } = request;
  try {
    return await deps.provider.write(secret, value, options);
  } catch (first) {
    // A refusal, an answered one included, is final: only no answer may still be applied.
    if (!(first instanceof StoreUnreachable) || first instanceof StoreRefused) throw first;
    try {
      // `known` is dropped: the first attempt may have created the secret.
      return { ...(await deps.provider.write(secret, value, { ...options, known: undefined })), created: options.known?.exists === false };
    } catch (again) {
      if (!(again instanceof StoreUnreachable)) throw again;
    }
    const held = await readStored(deps, secret).catch(() => undefined);
    if (held?.current?.key === key) return { version: held.current.version, created: options.known?.exists === false };
    throw new UnsettledWrite(
      `the store did not confirm the write of "${secret}" (${errorLine(first)}), nor the same write sent again; it may still be applied`,
      'run the same command again once the store answers (a rotation with --audit-log finishes it: admin rotate --resume)',
      { cause: first },
    );
  }
}

/** LiteLLM's own id for a key (the SHA-256 of it, hex): what its UI and /key/delete accept, and all the audit keeps. */
export function gatewayToken(key: string): string {
  return sha256Hex(key);
}

/** An error's one line for row errors, summaries and the audit, masked: a store's own text may quote the key. */
export function errorLine(error: unknown): string {
  // Our own lines are kept whole (the fix is at their end); another's text is cut after masking.
  if (error instanceof KeybrokerError) return maskSecrets(error.line());
  return maskSecrets(oneLine(error instanceof Error ? error.message : String(error))).slice(0, 300);
}
