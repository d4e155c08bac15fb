// One Vault as a provider talks to it: the settings resolved once, each HTTP call under the shared
// retry policy and one operation's deadline, and the answers no caller handles mapped to typed errors.
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import * as v from 'valibot';
import { ConfigError, KeybrokerError, NotAuthenticated, StoreUnreachable } from '../../src/kernel/errors.ts';
import { classifyStoreError, operationDeadline, throttlingOnly, withStoreRetry, type OperationDeadline } from '../../src/kernel/retry.ts';
import { checkLoopbackOwner } from '../../src/kernel/loopback-owner.ts';
import { readCaBundle, storeThrottling, storeTimedOut, type ProviderContext } from '../provider.ts';
import type { VaultAuth } from '../vault.schema.ts';
import { Envelope, type TokenInfo } from './answers.ts';

export interface VaultStore {
  type: 'vault';
  address?: string;
  namespace?: string;
  mount?: string;
  kvVersion?: 1 | 2;
  auth?: VaultAuth;
  caCert?: string;
}

/** The developer's token for this run. */
export interface Session {
  token: string;
  /** Where it came from, for messages: "VAULT_TOKEN", "~/.vault-token", "approle login at auth/approle". */
  source: string;
  /** A login just issued it (so it needs no lookup-self). */
  fresh: boolean;
}

/** What every call of one provider shares: the settings, the provider's context, and this run's token. */
export interface Vault {
  store: VaultStore;
  context: ProviderContext;
  env: NodeJS.ProcessEnv;
  /** VAULT_ADDR or the store's address, without a trailing "/". */
  address: string;
  namespace: string | undefined;
  mount: string;
  kvVersion: 1 | 2;
  auth: VaultAuth;
  /** The login method's mount: its own `mount`, else the method's name. */
  authMount: string;
  tokenFile: string;
  /** "Vault at https://…, KV v2 mount "secret"": for messages, never a credential. */
  where: string;
  /** The CA bundle, read on the first call. */
  ca?: string | undefined;
  session?: Promise<Session> | undefined;
  lookup?: Promise<TokenInfo> | undefined;
}

export function vaultContext(store: VaultStore, context: ProviderContext, address: string): Vault {
  const env = context.env;
  const namespace = store.namespace ?? (env['VAULT_NAMESPACE'] || undefined);
  const mount = store.mount ?? 'secret';
  const kvVersion = store.kvVersion ?? 2;
  const auth: VaultAuth = store.auth ?? { method: 'token' };
  return {
    store,
    context,
    env,
    address,
    namespace,
    mount,
    kvVersion,
    auth,
    authMount: 'mount' in auth && auth.mount ? auth.mount : auth.method,
    tokenFile: path.join(env['HOME'] || os.homedir(), '.vault-token'),
    where: `Vault at ${address}${namespace ? ` (namespace ${namespace})` : ''}, KV v${kvVersion} mount "${mount}"`,
  };
}

/** One operation (a read, a write: a few HTTP calls) under one deadline of the profile's timeout. */
export interface Call extends OperationDeadline {
  what: string;
}

export function deadline(vault: Vault, what: string): Call {
  // A bulk action's pacing waits are held off the deadline (as in one call's retries).
  const deadline = operationDeadline(vault.context.timeoutMs, vault.context.paceCall);
  return { signal: deadline.signal, remainingMs: () => deadline.remainingMs(), pace: deadline.pace, what };
}

export interface VaultResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Envelope | undefined;
}

/** An answer worth another attempt, thrown so the retry policy sees its status and Retry-After. */
class RetryableAnswer extends Error {
  readonly response: VaultResponse;
  readonly statusCode: number;
  readonly headers: http.IncomingHttpHeaders;
  constructor(response: VaultResponse) {
    super(`HTTP ${response.status}`);
    this.response = response;
    this.statusCode = response.status;
    this.headers = response.headers;
  }
}

function caBundle(vault: Vault): string | undefined {
  const file = vault.store.caCert ?? vault.env['VAULT_CACERT'];
  if (!file || vault.ca !== undefined) return vault.ca;
  vault.ca = vault.store.caCert ? readCaBundle(file, 'store.caCert', vault.context.profile) : readCaBundle(file, 'VAULT_CACERT');
  return vault.ca;
}

/**
 * One HTTP call to Vault's API under the shared retry policy, within the call's deadline: a 429
 * (rate limit quota) is sent again as Retry-After asks; a GET also on 5xx and resets. The last
 * answer is returned for the caller to map, as any other status.
 */
export async function send(
  vault: Vault,
  call: Call,
  method: string,
  apiPath: string,
  options: { token?: string; body?: unknown } = {},
): Promise<VaultResponse> {
  const { context } = vault;
  const url = new URL(`${vault.address}/v1/${apiPath}`);
  const headers: Record<string, string> = { 'X-Vault-Request': 'true', Accept: 'application/json' };
  if (options.token) headers['X-Vault-Token'] = options.token;
  if (vault.namespace) headers['X-Vault-Namespace'] = vault.namespace;
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  if (payload !== undefined) headers['Content-Type'] = 'application/json';
  const idempotent = method === 'GET';
  const ca = caBundle(vault);
  checkLoopbackOwner(url, { what: `the Vault address (profile "${context.profile}")`, carries: 'the Vault token or login' });
  try {
    return await withStoreRetry(
      async (signal) => {
        const response = await request(url, { method, headers, payload, signal: AbortSignal.any([signal, call.signal]), ca });
        // 503 is left out: a sealed Vault stays sealed for longer than one call.
        if (response.status === 429 || (idempotent && [500, 502, 504].includes(response.status))) throw new RetryableAnswer(response);
        return response;
      },
      {
        budgetMs: call.remainingMs(),
        // A write the server may have applied (a reset, a 5xx) is not sent twice; a throttled one it refused is.
        classify: idempotent ? classifyStoreError : throttlingOnly,
        ...(call.pace ? { pace: call.pace } : {}),
        onRetry: ({ attempt, waitMs, reason }) => {
          if (reason === 'throttled') context.onThrottle?.(waitMs);
          context.debug(`vault: ${method} ${apiPath}: attempt ${attempt} ${reason}; retrying in ${waitMs} ms`);
        },
      },
    );
  } catch (error) {
    if (error instanceof RetryableAnswer) return error.response;
    throw networkFailure(vault, error, call);
  }
}

/** A call that got no answer: out of time, a certificate not trusted, or no connection. */
function networkFailure(vault: Vault, error: unknown, call: Call): KeybrokerError {
  if (error instanceof KeybrokerError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
  const name = (error as Error).name;
  if (call.signal.aborted || code === 'ABORT_ERR' || name === 'TimeoutError' || name === 'AbortError') {
    return storeTimedOut(
      vault.where,
      call.what,
      vault.context.timeoutMs,
      'check your network or VPN and VAULT_ADDR, or raise "timeout" in the profile',
    );
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return new ConfigError(
      `cannot verify the TLS certificate of ${vault.address} (${code})`,
      'point VAULT_CACERT (or "caCert" in the store) at your Vault CA bundle',
    );
  }
  return new StoreUnreachable(
    `cannot reach ${vault.where} (${code}: ${(error as Error).message})`,
    'check your network or VPN and VAULT_ADDR (or "address" in the store)',
  );
}

/** A status no caller handles itself. */
export function unexpected(vault: Vault, response: VaultResponse, call: Call, subject: string, loginFix: string): KeybrokerError {
  const { where } = vault;
  const message = vaultMessage(response);
  // Older Vault answers a request without a token 400 "missing client token".
  if (/missing client token|invalid token/i.test(message)) {
    return new NotAuthenticated(`${where} did not accept the token for ${subject} (${message})`, loginFix);
  }
  if (response.status === 503 && /sealed/i.test(message)) {
    return new StoreUnreachable(`${where} is sealed`, 'ask your Vault operators to unseal it, then try again');
  }
  if (response.status === 429) {
    return storeThrottling(
      where,
      `HTTP 429: ${message}`,
      'try again in a minute; if it persists, ask your Vault operators about its rate limit quotas',
    );
  }
  if (response.status >= 500) {
    return new StoreUnreachable(
      `${where} failed ${call.what} for ${subject} (HTTP ${response.status}: ${message})`,
      'try again in a minute; if it persists, tell your Vault operators',
    );
  }
  if (response.status === 404) {
    return new ConfigError(
      `${where} has no such path for ${subject} (${message})`,
      'check "mount", "kvVersion" and "namespace" in the store (vault secrets list shows the mounts)',
    );
  }
  return new ConfigError(
    `${where} refused ${call.what} for ${subject} (HTTP ${response.status}: ${message})`,
    'check "mount" and "kvVersion" in the store',
  );
}

/** Vault's error JSON: {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}. */
export function vaultMessage(response: Pick<VaultResponse, 'status' | 'body'>): string {
  const errors = response.body?.errors ?? [];
  const lines = errors.flatMap((error) => {
    const bullets = [...String(error).matchAll(/^\s*\*\s*(.+)$/gm)].map((match) => match[1]!.trim());
    return bullets.length ? bullets : [String(error).trim()];
  });
  return lines.filter(Boolean).join('; ') || `HTTP ${response.status}`;
}

/** A body that is not Vault's JSON envelope (a proxy's page) is kept as an error text, cut short. */
export function parseBody(text: string): Envelope | undefined {
  if (!text) return undefined;
  try {
    const json: unknown = JSON.parse(text);
    const parsed = v.safeParse(Envelope, json);
    if (parsed.success && !Array.isArray(json)) return parsed.output;
  } catch {
    // not JSON
  }
  return { errors: [text.slice(0, 200)] };
}

function request(
  url: URL,
  init: { method: string; headers: Record<string, string>; payload: string | undefined; signal: AbortSignal; ca: string | undefined },
): Promise<VaultResponse> {
  return new Promise((resolve, reject) => {
    if (init.signal.aborted) return reject(init.signal.reason);
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(
      url,
      { method: init.method, headers: init.headers, signal: init.signal, ...(init.ca ? { ca: init.ca } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parseBody(Buffer.concat(chunks).toString('utf8')) }),
        );
      },
    );
    req.on('error', reject);
    req.end(init.payload);
  });
}
