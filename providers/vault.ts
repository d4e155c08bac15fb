// HashiCorp Vault (and OpenBao) KV secrets, as the developer the vault CLI says they are: the
// token in VAULT_TOKEN or ~/.vault-token, or a login method (approle, userpass, ldap, jwt, oidc).
// Vault's HTTP API directly over node:http(s): node-vault bundles axios (331 KB minified, no
// AbortSignal, so no hard bound on a call), reads neither ~/.vault-token nor VAULT_CACERT and has
// no OIDC flow; the API needs ~15 calls.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import {
  AccessDenied,
  ConfigError,
  KeybrokerError,
  NotAuthenticated,
  SecretNotFound,
  StoreUnreachable,
  UsageError,
} from '../src/kernel/errors.ts';
import { classifyStoreError, operationDeadline, throttlingOnly, withStoreRetry, type OperationDeadline } from '../src/kernel/retry.ts';
import { isPlainHttpToAnotherHost } from '../src/kernel/transport.ts';
import { checkLoopbackOwner } from '../src/kernel/loopback-owner.ts';
import { readCaBundle, storeThrottling, storeTimedOut, type Provider, type ProviderContext, type ProviderModule, type SecretSummary, type SecretValue, type StoreIdentity, type StoreConfig } from './provider.ts';
import { storeSchema, type VaultAuth } from './vault.schema.ts';

/** Re-exported: a provider module is its schema and its factory (ProviderModule). */
export { storeSchema };

type Auth = VaultAuth;
interface VaultStore {
  type: 'vault';
  address?: string;
  namespace?: string;
  mount?: string;
  kvVersion?: 1 | 2;
  auth?: Auth;
  caCert?: string;
}

/** What lookup-self says about a token (the fields keybroker uses). */
interface TokenInfo {
  display_name?: string;
  entity_id?: string;
  path?: string;
  meta?: Record<string, string> | null;
  ttl?: number;
  creation_ttl?: number;
  renewable?: boolean;
}

interface VaultResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: { errors?: string[]; data?: any; auth?: any; warnings?: string[] } | undefined;
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

interface Session {
  token: string;
  /** Where it came from, for messages: "VAULT_TOKEN", "~/.vault-token", "approle login at auth/approle". */
  source: string;
  fresh: boolean;
}

/** One operation (a read, a write: a few HTTP calls) under one deadline of the profile's timeout. */
interface Call extends OperationDeadline {
  what: string;
}

/** A token is renewed once less than this share of its TTL is left, as Vault's own LifetimeWatcher does (at ~2/3). */
const RENEW_WHEN_LEFT = 1 / 3;
/** Auto-created entities are named like this; such a name says nothing about the developer. */
const GENERATED_ENTITY_NAME = /^entity_[0-9a-f]{8}$/;
/** A raw key (not a JSON object) is written under this field, which is keybroker's default `field`. */
const RAW_VALUE_FIELD = 'api_key';
const INTERACTIVE_LOGIN_MS = 300_000;
/** `vault login -method=oidc` listens here unless given port=…. */
const VAULT_CLI_OIDC_PORT = 8250;

export function createProvider(config: StoreConfig, context: ProviderContext): Provider {
  const store = config as unknown as VaultStore;
  const env = context.env;
  const address = (store.address ?? env['VAULT_ADDR'] ?? 'https://127.0.0.1:8200').replace(/\/+$/, '');
  if (isPlainHttpToAnotherHost(address) && !context.allowInsecureHttp) {
    // Every request carries X-Vault-Token (and a login its password or secret id).
    throw new ConfigError(
      `${store.address ? '"address" of the store' : 'VAULT_ADDR'} is plain http:// to ${new URL(address).host}, another machine: the Vault token and your key would cross the network unencrypted (profile "${context.profile}")`,
      'use the Vault server\'s https:// address (or, only on a network you trust end to end, set "allowInsecureHttp": true in the profile)',
    );
  }
  const namespace = store.namespace ?? (env['VAULT_NAMESPACE'] || undefined);
  const mount = store.mount ?? 'secret';
  const kvVersion = store.kvVersion ?? 2;
  const auth: Auth = store.auth ?? { method: 'token' };
  const authMount = 'mount' in auth && auth.mount ? auth.mount : auth.method;
  const home = env['HOME'] || os.homedir();
  const tokenFile = path.join(home, '.vault-token');
  const where = `Vault at ${address}${namespace ? ` (namespace ${namespace})` : ''}, KV v${kvVersion} mount "${mount}"`;
  let ca: string | undefined;

  const loginCommand = (): string => {
    const flags = [
      ...(store.address && store.address !== env['VAULT_ADDR'] ? [`-address=${address}`] : []),
      ...(store.namespace && store.namespace !== env['VAULT_NAMESPACE'] ? [`-namespace=${namespace}`] : []),
    ];
    const pathFlag = 'mount' in auth && auth.mount ? [`-path=${auth.mount}`] : [];
    switch (auth.method) {
      case 'token':
        return ['vault login', ...flags].join(' ');
      case 'oidc':
        // The vault CLI's callback port must match the role's allowed_redirect_uris, as keybroker's does.
        return ['vault login', ...flags, '-method=oidc', ...pathFlag, ...(auth.role ? [`role=${auth.role}`] : []), ...(oidcPort() !== VAULT_CLI_OIDC_PORT ? [`port=${oidcPort()}`] : [])].join(' ');
      case 'userpass':
      case 'ldap':
        return ['vault login', ...flags, `-method=${auth.method}`, ...pathFlag, `username=${auth.username ?? osUser()}`].join(' ');
      case 'approle':
        return ['vault write', ...flags, `auth/${authMount}/login`, `role_id=${auth.roleId}`, 'secret_id=-'].join(' ');
      case 'jwt':
        return ['vault write', ...flags, `auth/${authMount}/login`, `role=${auth.role}`, auth.jwtFile ? `jwt=@${auth.jwtFile}` : `jwt=$${auth.jwtEnv}`].join(' ');
    }
  };
  const loginFix = () => `run '${loginCommand()}'`;
  const oidcPort = () => (auth.method === 'oidc' && auth.callbackPort) || VAULT_CLI_OIDC_PORT;

  function deadline(what: string): Call {
    // A bulk action's pacing waits are held off the deadline (as in one call's retries).
    const deadline = operationDeadline(context.timeoutMs, context.paceCall);
    return { signal: deadline.signal, remainingMs: () => deadline.remainingMs(), pace: deadline.pace, what };
  }

  function caBundle(): string | undefined {
    const file = store.caCert ?? env['VAULT_CACERT'];
    if (!file || ca !== undefined) return ca;
    ca = store.caCert ? readCaBundle(file, 'store.caCert', context.profile) : readCaBundle(file, 'VAULT_CACERT');
    return ca;
  }

  /**
   * One HTTP call to Vault's API under the shared retry policy, within the call's deadline: a 429
   * (rate limit quota) is sent again as Retry-After asks; a GET also on 5xx and resets. The last
   * answer is returned for the caller to map, as any other status.
   */
  async function send(call: Call, method: string, apiPath: string, options: { token?: string; body?: unknown } = {}): Promise<VaultResponse> {
    const url = new URL(`${address}/v1/${apiPath}`);
    const headers: Record<string, string> = { 'X-Vault-Request': 'true', Accept: 'application/json' };
    if (options.token) headers['X-Vault-Token'] = options.token;
    if (namespace) headers['X-Vault-Namespace'] = namespace;
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    const idempotent = method === 'GET';
    const ca = caBundle();
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
          onRetry: ({ attempt, waitMs, reason }) => (reason === 'throttled' && context.onThrottle?.(waitMs), context.debug(`vault: ${method} ${apiPath}: attempt ${attempt} ${reason}; retrying in ${waitMs} ms`)),
        },
      );
    } catch (error) {
      if (error instanceof RetryableAnswer) return error.response;
      throw networkFailure(error, call);
    }
  }

  function networkFailure(error: unknown, call: Call): KeybrokerError {
    if (error instanceof KeybrokerError) return error;
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
    const name = (error as Error).name;
    if (call.signal.aborted || code === 'ABORT_ERR' || name === 'TimeoutError' || name === 'AbortError') {
      return storeTimedOut(where, call.what, context.timeoutMs, 'check your network or VPN and VAULT_ADDR, or raise "timeout" in the profile');
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return new ConfigError(`cannot verify the TLS certificate of ${address} (${code})`, 'point VAULT_CACERT (or "caCert" in the store) at your Vault CA bundle');
    }
    return new StoreUnreachable(`cannot reach ${where} (${code}: ${(error as Error).message})`, 'check your network or VPN and VAULT_ADDR (or "address" in the store)');
  }

  /** A status no caller handles itself. */
  function unexpected(response: VaultResponse, call: Call, subject: string): KeybrokerError {
    const message = vaultMessage(response);
    // Older Vault answers a request without a token 400 "missing client token".
    if (/missing client token|invalid token/i.test(message)) {
      return new NotAuthenticated(`${where} did not accept the token for ${subject} (${message})`, loginFix());
    }
    if (response.status === 503 && /sealed/i.test(message)) {
      return new StoreUnreachable(`${where} is sealed`, 'ask your Vault operators to unseal it, then try again');
    }
    if (response.status === 429) {
      return storeThrottling(where, `HTTP 429: ${message}`, 'try again in a minute; if it persists, ask your Vault operators about its rate limit quotas');
    }
    if (response.status >= 500) {
      return new StoreUnreachable(`${where} failed ${call.what} for ${subject} (HTTP ${response.status}: ${message})`, 'try again in a minute; if it persists, tell your Vault operators');
    }
    if (response.status === 404) {
      return new ConfigError(`${where} has no such path for ${subject} (${message})`, 'check "mount", "kvVersion" and "namespace" in the store (vault secrets list shows the mounts)');
    }
    return new ConfigError(`${where} refused ${call.what} for ${subject} (HTTP ${response.status}: ${message})`, 'check "mount" and "kvVersion" in the store');
  }

  // ---- the developer's token ----

  /** The token of this run; `fresh` when a login just issued it (so it needs no lookup-self). */
  let session: Promise<Session> | undefined;
  let lookup: Promise<TokenInfo> | undefined;

  function currentSession(call: Call) {
    session ??= openSession(call);
    return session;
  }

  async function openSession(call: Call): Promise<Session> {
    switch (auth.method) {
      case 'approle':
        return login(call, `auth/${authMount}/login`, { role_id: auth.roleId, secret_id: secretFrom(auth.secretIdFile, auth.secretIdEnv, 'secret_id') });
      case 'jwt':
        return login(call, `auth/${authMount}/login`, { role: auth.role, jwt: secretFrom(auth.jwtFile, auth.jwtEnv, 'JWT') });
      case 'userpass':
      case 'ldap':
        if (auth.passwordFile) {
          const username = auth.username ?? osUser();
          return login(call, `auth/${authMount}/login/${encodeURIComponent(username)}`, { password: secretFrom(auth.passwordFile, undefined, 'password') });
        }
        return storedToken();
      default:
        return storedToken();
    }
  }

  /** What `vault login` left: VAULT_TOKEN first, then ~/.vault-token (the CLI's default token helper). */
  function storedToken(): Session {
    const fromEnv = env['VAULT_TOKEN']?.trim();
    if (fromEnv) return { token: fromEnv, source: 'VAULT_TOKEN', fresh: false };
    let fromFile = '';
    try {
      fromFile = fs.readFileSync(tokenFile, 'utf8').trim();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new NotAuthenticated(`cannot read ${tokenFile} (${(error as NodeJS.ErrnoException).code})`, `fix its permissions, or ${loginFix()}`);
      }
    }
    if (fromFile) return { token: fromFile, source: '~/.vault-token', fresh: false };
    throw new NotAuthenticated(`not logged in to ${where}: no token in VAULT_TOKEN or ~/.vault-token`, loginFix());
  }

  function secretFrom(file: string | undefined, variable: string | undefined, what: string): string {
    if (variable) {
      const value = env[variable]?.trim();
      if (value) return value;
      if (!file) throw new NotAuthenticated(`no Vault ${auth.method} ${what}: ${variable} is not set`, `set ${variable}, or ${loginFix()}`);
    }
    try {
      return fs.readFileSync(file!, 'utf8').trim();
    } catch (error) {
      throw new NotAuthenticated(`cannot read the Vault ${auth.method} ${what} from ${file} (${(error as NodeJS.ErrnoException).code})`, `check the file the profile names, or ${loginFix()}`);
    }
  }

  async function login(call: Call, loginPath: string, body: Record<string, string>): Promise<Session> {
    const response = await send({ ...call, what: `${auth.method} login` }, 'POST', loginPath, { body });
    const token = response.body?.auth?.client_token as string | undefined;
    if (response.status === 200 && token) {
      return { token, source: `${auth.method} login at auth/${authMount}`, fresh: true };
    }
    if (response.status === 400 || response.status === 403 || response.status === 401) {
      const fixes: Record<string, string> = {
        approle: 'check the AppRole role_id and secret_id (a secret_id may have expired or run out of uses)',
        jwt: `check the JWT (audience, expiry, bound claims) against the Vault role "${auth.method === 'jwt' ? auth.role : ''}"`,
        userpass: `check the password file, or ${loginFix()}`,
        ldap: `check the password file, or ${loginFix()}`,
      };
      throw new NotAuthenticated(`${where} refused the ${auth.method} login at auth/${authMount} (${vaultMessage(response)})`, fixes[auth.method] ?? loginFix());
    }
    throw unexpected(response, call, `auth/${authMount}`);
  }

  /** lookup-self, once per run; renews the token when it is renewable and near its end. */
  function tokenInfo(call: Call): Promise<TokenInfo> {
    lookup ??= (async () => {
      const { token, source } = await currentSession(call);
      const response = await send({ ...call, what: 'token lookup-self' }, 'GET', 'auth/token/lookup-self', { token });
      if (response.status === 403 || response.status === 401) {
        throw new NotAuthenticated(`${where} rejected the token from ${source} (expired or revoked)`, loginFix());
      }
      if (response.status !== 200) throw unexpected(response, call, 'your token');
      const info = (response.body?.data ?? {}) as TokenInfo;
      const ttl = info.ttl ?? 0;
      const full = info.creation_ttl ?? 0;
      if (info.renewable && ttl > 0 && full > 0 && ttl < full * RENEW_WHEN_LEFT) {
        const renewed = await send({ ...call, what: 'token renew-self' }, 'POST', 'auth/token/renew-self', { token, body: {} }).catch((error: unknown) => error);
        // Best effort: the token still works now; the next run tries again.
        context.debug(`vault: renew-self of the token from ${source}: ${'status' in (renewed as object) ? `HTTP ${(renewed as VaultResponse).status}` : String(renewed)}`);
      }
      return info;
    })();
    return lookup;
  }

  /** A 403 means a bad token or a policy that denies: lookup-self tells which. */
  async function denied(call: Call, subject: string, capability: string, policyPath: string): Promise<KeybrokerError> {
    const current = await currentSession(call);
    // A token just issued by a login is valid: only one from outside may have expired.
    if (!current.fresh) {
      try {
        await tokenInfo(call);
      } catch (error) {
        if (error instanceof KeybrokerError) return error;
        throw error;
      }
    }
    return new AccessDenied(
      `access denied to ${subject} in ${where} (no "${capability}" on ${policyPath})`,
      `ask your Vault admin for a policy granting "${capability}" on ${policyPath} (keybroker admin policy prints one)`,
    );
  }

  async function token(call: Call): Promise<string> {
    const current = await currentSession(call);
    // Tokens that came from outside are checked (and renewed) alongside the first request.
    if (!current.fresh) tokenInfo(call).catch(() => {});
    return current.token;
  }

  /** Waits for the background lookup-self (and renewal) so it is not cut off when the run ends. */
  async function settle(): Promise<void> {
    await lookup?.catch(() => {});
  }

  // ---- KV paths ----

  const encoded = (name: string) => name.split('/').map(encodeURIComponent).join('/');
  const dataPath = (name: string) => (kvVersion === 2 ? `${mount}/data/${encoded(name)}` : `${mount}/${encoded(name)}`);
  const metadataPath = (name: string) => (kvVersion === 2 ? `${mount}/metadata/${encoded(name)}` : `${mount}/${encoded(name)}`);
  const secretLabel = (name: string) => `secret "${name}"`;

  async function readMetadata(call: Call, tokenValue: string, name: string): Promise<KvMetadata | undefined> {
    const response = await send(call, 'GET', metadataPath(name), { token: tokenValue });
    if (response.status === 200) return response.body?.data as KvMetadata;
    if (response.status === 404 && !response.body?.errors?.length) return undefined;
    if (response.status === 403) throw await denied(call, secretLabel(name), 'read', `${mount}/metadata/${name}`);
    throw unexpected(response, call, secretLabel(name));
  }

  /** The name a fresh token carries, for the login message (the OIDC response's metadata has only the role). */
  async function loggedInAs(tokenValue: string): Promise<string> {
    const response = await send(deadline('token lookup-self'), 'GET', 'auth/token/lookup-self', { token: tokenValue }).catch(() => undefined);
    const info = (response?.status === 200 ? response.body?.data : undefined) as TokenInfo | undefined;
    return (info && (userFromToken(info) || info.display_name)) || 'your OIDC identity';
  }

  return {
    describe: () => where,
    loginCommand,

    ...(auth.method === 'oidc'
      ? {
          async interactiveLogin(io) {
            const port = oidcPort();
            const result = await oidcBrowserLogin({
              port,
              role: auth.role,
              exchange: (method, apiPath, body) => send(deadline('OIDC login'), method, apiPath, body === undefined ? {} : { body }),
              io,
              fail: (response, what) => unexpected(response, deadline(what), `auth/${authMount}`),
              authMount,
            });
            writeTokenFile(tokenFile, result.token);
            // What this run knew about a token is stale now: the next read takes the new one.
            session = undefined;
            lookup = undefined;
            io.say(`Logged in to ${where} as ${await loggedInAs(result.token)}; the token is in ${tokenFile}, where the vault CLI keeps it.`);
            if (env['VAULT_TOKEN']?.trim()) {
              // As `vault login` warns: the variable wins over the file, for keybroker as for the vault CLI.
              io.say('VAULT_TOKEN is set and takes precedence over ~/.vault-token: unset it to use this login');
            }
          },
        }
      : {}),

    async whoami(): Promise<StoreIdentity> {
      const call = deadline('token lookup-self');
      const info = await tokenInfo(call);
      let entityName: string | undefined;
      if (info.entity_id) {
        const { token: tokenValue } = await currentSession(call);
        const entity = await send({ ...call, what: 'identity entity lookup' }, 'GET', `identity/entity/id/${encodeURIComponent(info.entity_id)}`, { token: tokenValue });
        // Reading one's own entity is in Vault's default policy, but may be removed: then the alias name serves.
        if (entity.status === 200) entityName = entity.body?.data?.name as string | undefined;
      }
      const user = userFromToken(info, entityName);
      if (!user) {
        throw new ConfigError(`the token for ${where} carries no user name (display name "${info.display_name ?? ''}")`, `log in as yourself (${loginCommand()}), or set "user": "os" in the profile`);
      }
      return { user, principal: `${info.display_name ?? user}${info.entity_id ? ` (entity ${info.entity_id})` : ''}` };
    },

    async readCurrent(name): Promise<SecretValue> {
      const call = deadline(`read of ${secretLabel(name)}`);
      try {
        const tokenValue = await token(call);
        const response = await send(call, 'GET', dataPath(name), { token: tokenValue });
        if (response.status === 200) return kvValue(response.body?.data, kvVersion, name, where);
        if (response.status === 403) throw await denied(call, secretLabel(name), 'read', dataPath(name));
        if (response.status === 404) {
          const metadata = response.body?.data?.metadata as KvVersionMetadata | undefined;
          if (metadata?.deletion_time || metadata?.destroyed) {
            throw new SecretNotFound(`${secretLabel(name)} in ${where} was revoked (version ${metadata.version} ${metadata.destroyed ? 'destroyed' : 'deleted'})`, 'ask your admin for a new key');
          }
          if (response.body?.errors?.length) throw unexpected(response, call, secretLabel(name));
          throw new SecretNotFound(`${secretLabel(name)} does not exist in ${where}`, 'ask your admin to provision your key (keybroker admin put), or check "secret" and "mount" in the profile');
        }
        throw unexpected(response, call, secretLabel(name));
      } finally {
        await settle();
      }
    },

    async write(name, value, options) {
      const call = deadline(`write of ${secretLabel(name)}`);
      const tokenValue = await token(call);
      const data = kvData(value);
      if (kvVersion === 1) {
        const existed = (await readMetadata(call, tokenValue, name)) !== undefined;
        const response = await send(call, 'POST', dataPath(name), { token: tokenValue, body: data });
        if (response.status === 403) throw await denied(call, secretLabel(name), existed ? 'update' : 'create', dataPath(name));
        if (response.status !== 200 && response.status !== 204) throw unexpected(response, call, secretLabel(name));
        return { version: contentVersion(data), created: !existed };
      }
      // check-and-set 0 creates only a secret that does not exist; otherwise the version read is the one replaced.
      let metadata: KvMetadata | undefined;
      let response = await send(call, 'POST', dataPath(name), { token: tokenValue, body: { options: { cas: 0 }, data } });
      if (response.status === 400 && /check-and-set/i.test(vaultMessage(response))) {
        metadata = await readMetadata(call, tokenValue, name);
        response = await send(call, 'POST', dataPath(name), { token: tokenValue, body: { options: { cas: metadata?.current_version ?? 0 }, data } });
        if (response.status === 400 && /check-and-set/i.test(vaultMessage(response))) {
          throw new StoreUnreachable(`${secretLabel(name)} in ${where} changed while it was being written`, 'run the command again');
        }
      }
      if (response.status === 403) throw await denied(call, secretLabel(name), metadata ? 'update' : 'create', dataPath(name));
      if (response.status !== 200) throw unexpected(response, call, secretLabel(name));
      const version = String(response.body?.data?.version ?? '');
      const labels = { ...(metadata?.custom_metadata ?? {}), ...options.labels, ...(options.description ? { description: options.description } : {}) };
      if (Object.keys(options.labels).length || options.description) {
        const tagged = await send(call, 'POST', metadataPath(name), { token: tokenValue, body: { custom_metadata: labels } });
        if (tagged.status === 403) throw await denied(call, secretLabel(name), 'update', metadataPath(name));
        if (tagged.status !== 200 && tagged.status !== 204) throw unexpected(tagged, call, secretLabel(name));
      }
      return { version, created: metadata === undefined };
    },

    async *list(prefix) {
      const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const listPath = (dir: string) => (kvVersion === 2 ? `${mount}/metadata/${encoded(dir)}` : `${mount}/${encoded(dir)}`);
      const pending = [folder];
      while (pending.length) {
        const dir = pending.shift()!;
        // Each page of the walk gets its own bound: a large store is many calls, each one bounded.
        const call = deadline(`list of "${dir}"`);
        const tokenValue = await token(call);
        // LIST as GET ?list=true, which Vault accepts too (proxies and Node's HTTP stack reject the LIST verb).
        const response = await send(call, 'GET', `${listPath(dir)}?list=true`, { token: tokenValue });
        if (response.status === 404 && !response.body?.errors?.length) continue;
        if (response.status === 403) throw await denied(call, `"${dir}"`, 'list', listPath(dir));
        if (response.status !== 200) throw unexpected(response, call, `"${dir}"`);
        for (const key of (response.body?.data?.keys ?? []) as string[]) {
          const full = dir + key;
          if (key.endsWith('/')) {
            if (full.startsWith(prefix) || prefix.startsWith(full)) pending.push(full);
            continue;
          }
          if (!full.startsWith(prefix)) continue;
          yield await summarize(full);
        }
      }
      await settle();

      async function summarize(name: string): Promise<SecretSummary> {
        if (kvVersion === 1) return { name, enabled: true, labels: {} };
        const call = deadline(`metadata read of ${secretLabel(name)}`);
        const metadata = await readMetadata(call, await token(call), name);
        const summary: SecretSummary = { name, enabled: false, labels: { ...(metadata?.custom_metadata ?? {}) } };
        if (!metadata) return summary;
        const current = metadata.versions?.[String(metadata.current_version)];
        const deletedAt = current?.deletion_time ? Date.parse(current.deletion_time) : undefined;
        summary.enabled = Boolean(current) && !current!.destroyed && (deletedAt === undefined || deletedAt > Date.now());
        summary.version = String(metadata.current_version);
        if (metadata.created_time) summary.createdAt = new Date(metadata.created_time);
        if (metadata.updated_time) summary.updatedAt = new Date(metadata.updated_time);
        if (deletedAt !== undefined && deletedAt > Date.now()) summary.expiresAt = new Date(deletedAt);
        return summary;
      }
    },

    async revoke(name, { purge }) {
      const call = deadline(`${purge ? 'purge' : 'revoke'} of ${secretLabel(name)}`);
      if (kvVersion === 1 && !purge) {
        throw new UsageError(`KV version 1 at mount "${mount}" keeps no versions, so a revoke there cannot be undone`, 'revoke with --purge to delete it for good');
      }
      const tokenValue = await token(call);
      // Vault answers a delete of a missing path with 204: look first, so a typo is not reported as done.
      if (!(await readMetadata(call, tokenValue, name))) throw new SecretNotFound(`${secretLabel(name)} does not exist in ${where}`, 'check the name (keybroker admin list)');
      // Soft: delete the latest version (vault kv undelete brings it back). Purge: delete metadata and every version.
      const target = purge ? metadataPath(name) : dataPath(name);
      const response = await send(call, 'DELETE', target, { token: tokenValue });
      if (response.status === 403) throw await denied(call, secretLabel(name), 'delete', target);
      if (response.status !== 204 && response.status !== 200) throw unexpected(response, call, secretLabel(name));
      await settle();
    },
  };
}

interface KvVersionMetadata {
  created_time?: string;
  deletion_time?: string;
  destroyed?: boolean;
  version?: number;
  custom_metadata?: Record<string, string> | null;
}

interface KvMetadata {
  current_version: number;
  created_time?: string;
  updated_time?: string;
  custom_metadata?: Record<string, string> | null;
  versions?: Record<string, KvVersionMetadata>;
}

/** KV holds a map: a one-field map of a string is the key itself, anything else is the JSON form. */
function kvValue(data: any, kvVersion: 1 | 2, name: string, where: string): SecretValue {
  const map = (kvVersion === 2 ? data?.data : data) as Record<string, unknown> | null | undefined;
  if (!map || typeof map !== 'object') {
    throw new SecretNotFound(`secret "${name}" in ${where} has no data (destroyed?)`, 'ask your admin for a new key');
  }
  const entries = Object.entries(map);
  const value = entries.length === 1 && typeof entries[0]![1] === 'string' ? (entries[0]![1] as string) : JSON.stringify(map);
  if (kvVersion === 1) return { value, version: contentVersion(map) };
  const metadata = (data?.metadata ?? {}) as KvVersionMetadata;
  const result: SecretValue = { value, version: String(metadata.version ?? '') };
  if (metadata.created_time) result.createdAt = new Date(metadata.created_time);
  // delete_version_after schedules a version's deletion: that is when this key stops being served.
  if (metadata.deletion_time) result.expiresAt = new Date(metadata.deletion_time);
  return result;
}

/** What `vault kv put` would hold: a JSON object's fields as they are, a raw key under api_key. */
function kvData(value: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: a raw key
  }
  return { [RAW_VALUE_FIELD]: value };
}

/** KV v1 keeps no versions: a digest of the content stands in (it changes when the content does). */
function contentVersion(map: unknown): string {
  return 'sha256:' + createHash('sha256').update(JSON.stringify(map)).digest('hex').slice(0, 12);
}

/** `{user}`: an entity name an admin gave, else the name the auth method recorded, else the alias in the display name. */
function userFromToken(info: TokenInfo, entityName?: string): string {
  if (entityName && !GENERATED_ENTITY_NAME.test(entityName)) return entityName;
  // userpass/ldap record the username; approle the role's name (a CI job's identity).
  const username = info.meta?.['username'] ?? info.meta?.['user'] ?? info.meta?.['role_name'];
  if (username) return username;
  const display = info.display_name ?? '';
  // Vault prefixes the alias with the auth mount ("oidc-alice@corp.com", "userpass-alice").
  const mountPrefix = /^auth\/(.+?)\/(login|oidc|callback)/.exec(info.path ?? '')?.[1]?.replaceAll('/', '-');
  if (mountPrefix && display.startsWith(`${mountPrefix}-`)) return display.slice(mountPrefix.length + 1);
  return display === 'token' || display === 'root' ? '' : display.replace(/^token-/, '');
}

/** Vault's error JSON: {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}. */
function vaultMessage(response: VaultResponse): string {
  const errors = response.body?.errors ?? [];
  const lines = errors.flatMap((error) => {
    const bullets = [...String(error).matchAll(/^\s*\*\s*(.+)$/gm)].map((match) => match[1]!.trim());
    return bullets.length ? bullets : [String(error).trim()];
  });
  return lines.filter(Boolean).join('; ') || `HTTP ${response.status}`;
}

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '<your user name>';
  }
}

function request(
  url: URL,
  init: { method: string; headers: Record<string, string>; payload: string | undefined; signal: AbortSignal; ca: string | undefined },
): Promise<VaultResponse> {
  return new Promise((resolve, reject) => {
    if (init.signal.aborted) return reject(init.signal.reason);
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, { method: init.method, headers: init.headers, signal: init.signal, ...(init.ca ? { ca: init.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: VaultResponse['body'];
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = { errors: [text.slice(0, 200)] };
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end(init.payload);
  });
}

/** Where `vault login` keeps the token: ~/.vault-token, 0600, replaced atomically. */
function writeTokenFile(file: string, tokenValue: string): void {
  const temp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temp, tokenValue, { mode: 0o600 });
  fs.renameSync(temp, file);
}

/**
 * Vault's OIDC login as `vault login -method=oidc` does it: ask Vault for the provider's auth URL
 * for a localhost redirect, let the browser sign in, take the code on 127.0.0.1, exchange it.
 */
async function oidcBrowserLogin(options: {
  port: number;
  role: string | undefined;
  authMount: string;
  exchange(method: string, apiPath: string, body?: unknown): Promise<VaultResponse>;
  fail(response: VaultResponse, what: string): KeybrokerError;
  io: { say(line: string): void; openBrowser(url: string): Promise<void> };
}): Promise<{ token: string }> {
  const redirectUri = `http://localhost:${options.port}/oidc/callback`;
  const clientNonce = randomBytes(20).toString('hex');
  const server = http.createServer();
  // Any local user can call the callback: only the answer with the state of Vault's auth URL counts.
  let expectedState: string | undefined;
  const callback = new Promise<URLSearchParams>((resolve) => {
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/oidc/callback') {
        res.writeHead(404).end();
        return;
      }
      if (!expectedState || url.searchParams.get('state') !== expectedState) {
        res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end('keybroker: this answer is not for the login in progress (wrong state); it was ignored.\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
      res.end('<!doctype html><title>Vault login</title><p>Signed in to Vault. You can close this window and go back to the terminal.</p>');
      resolve(url.searchParams);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new UsageError(`port ${options.port} on 127.0.0.1 is in use, so the OIDC callback cannot be received`, 'close what holds it (another vault login?), or set "callbackPort" in the store\'s auth')
          : error,
      ),
    );
    server.listen(options.port, '127.0.0.1', resolve);
  });
  try {
    const started = await options.exchange('POST', `auth/${options.authMount}/oidc/auth_url`, {
      redirect_uri: redirectUri,
      client_nonce: clientNonce,
      ...(options.role ? { role: options.role } : {}),
    });
    const authUrl = started.body?.data?.auth_url as string | undefined;
    if (started.status === 200 && !authUrl) {
      throw new ConfigError(`Vault returned no OIDC auth URL for ${redirectUri}`, `ask your Vault admin to allow ${redirectUri} in the OIDC role's allowed_redirect_uris`);
    }
    if (started.status !== 200) {
      if (started.status === 400) {
        throw new ConfigError(`Vault refused to start the OIDC login (${vaultMessage(started)})`, `check the role, and that ${redirectUri} is in its allowed_redirect_uris`);
      }
      throw options.fail(started, 'OIDC auth_url');
    }
    expectedState = new URL(authUrl!).searchParams.get('state') ?? undefined;
    if (!expectedState) throw new ConfigError(`Vault's OIDC auth URL carries no state, so its callback cannot be told from a forged one`, 'ask your Vault admin to check the OIDC auth method');
    options.io.say(`Complete the login in your browser: ${authUrl}`);
    await options.io.openBrowser(authUrl!);
    options.io.say(`waiting up to ${INTERACTIVE_LOGIN_MS / 60_000} minutes for the sign-in to come back to ${redirectUri}`);
    let timer: NodeJS.Timeout | undefined;
    const params = await Promise.race([
      callback,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NotAuthenticated(`the browser login did not come back to ${redirectUri} within ${INTERACTIVE_LOGIN_MS / 60_000} minutes`, 'run \'keybroker login\' again')), INTERACTIVE_LOGIN_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (params.get('error')) {
      throw new NotAuthenticated(`the identity provider refused the login (${params.get('error')}: ${params.get('error_description') ?? ''})`, 'check with your identity provider, then run \'keybroker login\' again');
    }
    const query = new URLSearchParams({ state: params.get('state') ?? '', code: params.get('code') ?? '', client_nonce: clientNonce });
    const exchanged = await options.exchange('GET', `auth/${options.authMount}/oidc/callback?${query}`);
    const token = exchanged.body?.auth?.client_token as string | undefined;
    if (exchanged.status !== 200 || !token) {
      if (exchanged.status === 400 || exchanged.status === 403) {
        throw new NotAuthenticated(`Vault refused the OIDC callback (${vaultMessage(exchanged)})`, 'run \'keybroker login\' again');
      }
      throw options.fail(exchanged, 'OIDC callback');
    }
    return { token };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

export const module: ProviderModule = { storeSchema, createProvider };
