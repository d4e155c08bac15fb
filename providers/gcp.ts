// GCP Secret Manager, as the developer Application Default Credentials say they are
// (`gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the metadata server).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
// The v1 client alone: the package index also parses v1beta2 and a 1 MB static protobuf module.
import { SecretManagerServiceClient } from '@google-cloud/secret-manager/build/src/v1/secret_manager_service_client.js';
import { GoogleAuth, grpc, type CallOptions } from 'google-gax';
import {
  AccessDenied,
  ConfigError,
  KeybrokerError,
  NotAuthenticated,
  SecretNotFound,
  StoreUnreachable,
  UnusableKey,
} from '../src/kernel/errors.ts';
import { classifyStoreError, RetryBudgetExceeded, throttlingOnly, withStoreRetry, type RetryClass } from '../src/kernel/retry.ts';
import {
  jwtClaims,
  NETWORK_ERROR_CODES,
  readCaBundle,
  storeThrottling,
  storeTimedOut,
  type FailedCall,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type SecretSummary,
  type SecretValue,
  type StoreIdentity,
  type StoreConfig,
  type WriteOptions,
  type WriteResult,
} from './provider.ts';
import { storeSchema } from './gcp.schema.ts';

/** Re-exported: a provider module is its schema and its factory (ProviderModule). */
export { storeSchema };

type GcpStore = { type: 'gcp'; project: string; version?: string; endpoint?: string; caFile?: string };

const LOGIN_COMMAND = 'gcloud auth application-default login';
const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
const AUTHORIZED_USER = 'authorized_user';

type Client = InstanceType<typeof SecretManagerServiceClient>;
interface Session {
  client: Client;
  auth: GoogleAuth;
}

export function createProvider(config: StoreConfig, context: ProviderContext): Provider {
  const gcp = gcpContext(config as GcpStore, context);
  return {
    describe: () => gcp.where,
    loginCommand: () => LOGIN_COMMAND,
    whoami: () => gcp.call('identify', undefined, async ({ auth }) => identityOf(await auth.getClient())),
    readCurrent: (name) => readCurrent(gcp, name),
    write: (name, value, options) => writeSecret(gcp, name, value, options),
    list: (prefix) => listSecrets(gcp, prefix),
    revoke: (name, { purge }) => revokeSecret(gcp, name, purge),
  };
}

/** What every call of one provider shares: the project, the names for messages, the bounded call. */
interface GcpContext {
  project: string;
  /** The version `get` reads: "latest" unless the profile pins one. */
  version: string;
  where: string;
  call<T>(
    what: string,
    secret: string | undefined,
    work: (session: Session, options: CallOptions) => Promise<T>,
    classify?: (error: unknown) => RetryClass,
  ): Promise<T>;
}

function gcpContext(store: GcpStore, context: ProviderContext): GcpContext {
  const version = store.version ?? 'latest';
  const endpoint = store.endpoint ? new URL(store.endpoint) : undefined;
  const where = `GCP Secret Manager (project ${store.project}${version !== 'latest' ? `, version ${version}` : ''}${endpoint ? `, ${endpoint.host}` : ''})`;
  const credentialsFile = context.env['GOOGLE_APPLICATION_CREDENTIALS'];
  const loginFix = credentialsFile
    ? `fix or replace the credentials file that GOOGLE_APPLICATION_CREDENTIALS names (${credentialsFile}), or unset it and run '${LOGIN_COMMAND}'`
    : `run '${LOGIN_COMMAND}'`;
  let session: Session | undefined;
  const open = () => (session ??= openSession(store, context, endpoint));
  return {
    project: store.project,
    version,
    where,
    /**
     * One call to the store under the shared retry policy (gax's own retries off), bounded by the
     * profile's timeout with its retries and token refresh. Calls that are not idempotent pass `throttlingOnly`.
     */
    async call(what, secret, work, classify = classifyStoreError) {
      const attempt = async (_signal: AbortSignal, _number: number, remainingMs: number) => {
        const current = open();
        const started = Date.now();
        // The token first: a login problem then says so, rather than surfacing as a gRPC metadata failure.
        await (await current.auth.getClient()).getAccessToken();
        return work(current, { timeout: Math.max(1, remainingMs - (Date.now() - started)), retry: null });
      };
      try {
        return await withStoreRetry(attempt, {
          budgetMs: context.timeoutMs,
          classify,
          ...(context.paceCall ? { pace: context.paceCall } : {}),
          onRetry: ({ attempt: number, waitMs, reason }) => {
            if (reason === 'throttled') context.onThrottle?.(waitMs);
            context.debug(`${what}: attempt ${number} ${reason}; retrying in ${waitMs} ms`);
          },
        });
      } catch (error) {
        if (error instanceof RetryBudgetExceeded) {
          // Start the next call on a fresh channel (the CLI exits regardless of a lingering connect).
          void session?.client.close().catch(() => {});
          session = undefined;
        }
        throw mapGcpError(error, { what, secret, where, loginFix, timeoutMs: context.timeoutMs, project: store.project });
      }
    },
  };
}

/** The client and its credentials, as Application Default Credentials and the profile say. */
function openSession(store: GcpStore, context: ProviderContext, endpoint: URL | undefined): Session {
  const adc = readAdcFile(context.env);
  const clientOptions: Record<string, unknown> = { transporterOptions: { timeout: context.timeoutMs } };
  // google-auth-library ignores an authorized_user file's token_uri; Python's google-auth and gcloud honour it.
  if (adc?.json.type === AUTHORIZED_USER && typeof adc.json.token_uri === 'string') {
    clientOptions['endpoints'] = { oauth2TokenUrl: adc.json.token_uri, tokenInfoUrl: new URL('tokeninfo', adc.json.token_uri).href };
  }
  const auth = new GoogleAuth({
    scopes: [CLOUD_PLATFORM_SCOPE],
    // A known project spares the library its `gcloud config config-helper` and metadata-server look-ups.
    projectId: store.project,
    clientOptions,
    // gcloud writes ADC under CLOUDSDK_CONFIG when that is set; the Node library only looks under HOME.
    ...(adc && adc.source === 'CLOUDSDK_CONFIG' ? { keyFilename: adc.file } : {}),
  });
  const options: Record<string, unknown> = { auth, fallback: false };
  if (endpoint) {
    options['apiEndpoint'] = endpoint.hostname.replace(/^\[(.*)\]$/, '$1');
    options['port'] = Number(endpoint.port || 443);
  }
  if (store.caFile) options['sslCreds'] = channelCredentials(readCaBundle(store.caFile, 'store.caFile', context.profile), auth);
  return { client: new SecretManagerServiceClient(options as ConstructorParameters<typeof SecretManagerServiceClient>[0]), auth };
}

/** The same credentials google-gax builds for itself, with the profile's CA bundle added to the public roots. */
function channelCredentials(extraCa: string, auth: GoogleAuth): grpc.ChannelCredentials {
  const roots = Buffer.from([...tls.rootCertificates, extraCa].join('\n'));
  return grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(roots),
    grpc.credentials.createFromGoogleCredential({
      getRequestHeaders: async (url?: string) => Object.fromEntries((await (await auth.getClient()).getRequestHeaders(url)).entries()),
    }),
  );
}

const secretPath = (gcp: GcpContext, name: string) => `projects/${gcp.project}/secrets/${secretIdFor(name)}`;

async function readCurrent(gcp: GcpContext, name: string): Promise<SecretValue> {
  const versionName = `${secretPath(gcp, name)}/versions/${gcp.version}`;
  const [response] = await gcp.call('AccessSecretVersion', name, ({ client }, options) =>
    client.accessSecretVersion({ name: versionName }, options),
  );
  const number = versionNumberOf(response.name ?? '');
  return { value: payloadText(response.payload, `version ${number} of secret "${name}" in ${gcp.where}`), version: number };
}

/** A version's payload as text: a checksum that does not match is a corrupted transfer, binary data an unusable key. */
export function payloadText(
  payload: { data?: Uint8Array | string | null; dataCrc32c?: unknown; _dataCrc32c?: unknown } | null | undefined,
  subject: string,
): string {
  const data = payload?.data;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'base64') : Buffer.from(data ?? new Uint8Array());
  const expected = checksumOf(payload);
  if (expected !== undefined && crc32c(bytes) !== expected) {
    throw new StoreUnreachable(
      `${subject} arrived corrupted (its CRC32C checksum does not match)`,
      'try again; if it persists, check for a proxy that alters traffic to Secret Manager',
    );
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UnusableKey(`${subject} is binary data, not UTF-8 text`, 'ask your admin to store the key as text (keybroker admin put)');
  }
}

async function writeSecret(gcp: GcpContext, name: string, value: string, options: WriteOptions): Promise<WriteResult> {
  const labels = encodeLabels(options.labels);
  const payload = { data: Buffer.from(value, 'utf8'), dataCrc32c: crc32c(Buffer.from(value, 'utf8')) };
  const existing = await gcp
    .call('GetSecret', name, ({ client }, callOptions) => client.getSecret({ name: secretPath(gcp, name) }, callOptions))
    .catch((error: unknown) => {
      if (error instanceof SecretNotFound) return undefined;
      throw error;
    });
  if (!existing) {
    const secret = {
      replication: { automatic: {} },
      labels,
      ...(options.description ? { annotations: { description: options.description } } : {}),
    };
    const request = { parent: `projects/${gcp.project}`, secretId: secretIdFor(name), secret };
    await gcp.call('CreateSecret', name, ({ client }, callOptions) => client.createSecret(request, callOptions), throttlingOnly);
  } else {
    const current = (existing[0].labels ?? {}) as Record<string, string>;
    if (Object.entries(labels).some(([key, label]) => current[key] !== label)) {
      const request = { secret: { name: secretPath(gcp, name), labels: { ...current, ...labels } }, updateMask: { paths: ['labels'] } };
      await gcp.call('UpdateSecret', name, ({ client }, callOptions) => client.updateSecret(request, callOptions));
    }
  }
  // Each call adds a version: sent again only when throttled, which the service did not act on.
  const [added] = await gcp.call(
    'AddSecretVersion',
    name,
    ({ client }, callOptions) => client.addSecretVersion({ parent: secretPath(gcp, name), payload }, callOptions),
    throttlingOnly,
  );
  return { version: versionNumberOf(added.name ?? ''), created: !existing };
}

async function* listSecrets(gcp: GcpContext, prefix: string): AsyncGenerator<SecretSummary> {
  const filter = prefix ? `name:"${secretIdFor(prefix)}"` : '';
  let pageToken = '';
  do {
    const request = { parent: `projects/${gcp.project}`, pageSize: 100, pageToken, filter };
    const [secrets, , response] = await gcp.call('ListSecrets', undefined, ({ client }, options) =>
      client.listSecrets(request, { ...options, autoPaginate: false }),
    );
    for (const secret of secrets) {
      const name = nameForSecretId((secret.name ?? '').split('/').at(-1) ?? '');
      if (name === undefined || !name.startsWith(prefix)) continue;
      const newest = await gcp.call('ListSecretVersions', name, ({ client }, options) => newestVersion(gcp, name, options, client));
      yield summaryOf(name, secret, newest);
    }
    pageToken = response?.nextPageToken ?? '';
  } while (pageToken);
}

/** The version `list` reports: the pinned one, else the newest whatever its state. */
async function newestVersion(gcp: GcpContext, name: string, options: CallOptions, client: Client): Promise<VersionInfo | undefined> {
  if (gcp.version !== 'latest') {
    const [found] = await client.getSecretVersion({ name: `${secretPath(gcp, name)}/versions/${gcp.version}` }, options);
    return found as VersionInfo;
  }
  // Versions come newest first; `latest` is the newest whatever its state.
  const [versions] = await client.listSecretVersions({ parent: secretPath(gcp, name), pageSize: 1 }, { ...options, autoPaginate: false });
  return versions[0] as VersionInfo | undefined;
}

/** One secret as an admin lists it: enabled when its newest version is, labels unescaped, never the value. */
export function summaryOf(name: string, secret: SecretInfo, newest: VersionInfo | undefined): SecretSummary {
  const summary: SecretSummary = {
    name,
    enabled: newest?.state === 'ENABLED',
    labels: decodeLabels((secret.labels ?? {}) as Record<string, string>),
  };
  if (newest) summary.version = versionNumberOf(newest.name ?? '');
  const created = timestampOf(secret.createTime);
  if (created) summary.createdAt = created;
  const updated = timestampOf(newest?.createTime);
  if (updated) summary.updatedAt = updated;
  const expires = timestampOf(secret.expireTime);
  if (expires) summary.expiresAt = expires;
  return summary;
}

async function revokeSecret(gcp: GcpContext, name: string, purge: boolean): Promise<void> {
  if (purge) {
    // A repeated delete after one that went through answers NOT_FOUND: only a throttled one is sent again.
    await gcp.call(
      'DeleteSecret',
      name,
      ({ client }, options) => client.deleteSecret({ name: secretPath(gcp, name) }, options),
      throttlingOnly,
    );
    return;
  }
  // Soft: disable every enabled version (an admin can enable one again); the secret stays.
  let pageToken = '';
  do {
    const request = { parent: secretPath(gcp, name), pageSize: 100, pageToken, filter: 'state:ENABLED' };
    const [versions, , response] = await gcp.call('ListSecretVersions', name, ({ client }, options) =>
      client.listSecretVersions(request, { ...options, autoPaginate: false }),
    );
    for (const entry of versions) {
      await gcp.call('DisableSecretVersion', name, ({ client }, options) =>
        client.disableSecretVersion({ name: entry.name ?? '' }, options),
      );
    }
    pageToken = response?.nextPageToken ?? '';
  } while (pageToken);
}

type Timestamp = { seconds?: unknown; nanos?: unknown } | null | undefined;

interface SecretInfo {
  labels?: Record<string, string> | null;
  createTime?: Timestamp;
  expireTime?: Timestamp;
}

interface VersionInfo {
  name?: string | null;
  state?: string | number | null;
  createTime?: Timestamp;
}

interface AdcFile {
  file: string;
  source: 'GOOGLE_APPLICATION_CREDENTIALS' | 'CLOUDSDK_CONFIG' | 'gcloud';
  json: { type?: unknown; token_uri?: unknown };
}

/** The ADC file the library will use (same order), read only for what the library does not honour. */
function readAdcFile(env: NodeJS.ProcessEnv): AdcFile | undefined {
  const candidates: [string | undefined, AdcFile['source']][] = [
    [env['GOOGLE_APPLICATION_CREDENTIALS'] || undefined, 'GOOGLE_APPLICATION_CREDENTIALS'],
    [env['CLOUDSDK_CONFIG'] ? path.join(env['CLOUDSDK_CONFIG'], 'application_default_credentials.json') : undefined, 'CLOUDSDK_CONFIG'],
    [gcloudConfigDir(env) ? path.join(gcloudConfigDir(env)!, 'application_default_credentials.json') : undefined, 'gcloud'],
  ];
  for (const [file, source] of candidates) {
    if (!file) continue;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      // The library reports a missing GOOGLE_APPLICATION_CREDENTIALS file itself.
      if (source === 'GOOGLE_APPLICATION_CREDENTIALS') return undefined;
      continue;
    }
    try {
      return { file, source, json: JSON.parse(text) as AdcFile['json'] };
    } catch {
      throw new NotAuthenticated(
        `the application default credentials file ${file} is not valid JSON`,
        `run '${LOGIN_COMMAND}' to write it again`,
      );
    }
  }
  return undefined;
}

function gcloudConfigDir(env: NodeJS.ProcessEnv): string | undefined {
  if (process.platform === 'win32') return env['APPDATA'] ? path.join(env['APPDATA'], 'gcloud') : undefined;
  const home = env['HOME'] || os.homedir();
  return home ? path.join(home, '.config', 'gcloud') : undefined;
}

type AuthClient = Awaited<ReturnType<GoogleAuth['getClient']>>;

/**
 * `{user}` is the account's e-mail: a service account's own address, else the `email` claim of the
 * id_token Google returns with a user's refreshed token (gcloud's ADC login asks for openid and
 * email), else the token's e-mail from the tokeninfo endpoint.
 */
async function identityOf(client: AuthClient): Promise<StoreIdentity> {
  const serviceAccount = (client as { email?: string }).email ?? (client as { targetPrincipal?: string }).targetPrincipal;
  if (serviceAccount) return { user: serviceAccount, principal: `serviceAccount:${serviceAccount}` };
  const { token } = await client.getAccessToken();
  const idToken = (client as { credentials?: { id_token?: string | null } }).credentials?.id_token;
  const claimed = idToken ? jwtClaims(idToken)['email'] : undefined;
  let email = typeof claimed === 'string' ? claimed : undefined;
  if (!email && token && 'getTokenInfo' in client) {
    email = (await (client as unknown as { getTokenInfo(token: string): Promise<{ email?: string }> }).getTokenInfo(token)).email;
  }
  if (!email) {
    throw new ConfigError(
      'the Google credentials carry no e-mail address to name your key by',
      `run '${LOGIN_COMMAND}' (its default scopes include your e-mail), or set "user": "os" in the profile`,
    );
  }
  return { user: email, principal: `user:${email}` };
}

// Secret ids may only hold [A-Za-z0-9_-] (at most 255). Every other character, and "_" itself, is
// written as "_" and two lowercase hex digits per UTF-8 byte: reversible, so no two names collide.
// "claude-code/keys/alice@example.com" -> "claude-code_2fkeys_2falice_40example_2ecom".
const SECRET_ID_CHARS = /[A-Za-z0-9-]/;
export function secretIdFor(name: string): string {
  const id = escapeOutside(name, SECRET_ID_CHARS);
  if (id.length === 0 || id.length > 255) {
    throw new ConfigError(
      `the secret name "${name}" becomes the Secret Manager id "${id.slice(0, 40)}…", longer than its 255-character limit`,
      'use a shorter "secret" template',
    );
  }
  return id;
}

/** The logical name of a secret id keybroker made; undefined for any other secret in the project. */
export function nameForSecretId(id: string): string | undefined {
  const name = unescapeName(id);
  // "a_2db" decodes to "a-b", whose id is "a-b": another secret, not this one.
  return name !== undefined && escapeOutside(name, SECRET_ID_CHARS) === id ? name : undefined;
}

// Label values may only hold lowercase letters, digits, "_" and "-" (at most 63): the same escape,
// with upper-case letters escaped too. "alice@example.com" -> "alice_40example_2ecom".
export function encodeLabels(labels: Record<string, string>): Record<string, string> {
  const encoded: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    const labelKey = escapeOutside(key, /[a-z0-9-]/);
    const labelValue = escapeOutside(value, /[a-z0-9-]/);
    if (!/^[a-z][a-z0-9_-]{0,62}$/.test(labelKey) || labelValue.length > 63) {
      throw new ConfigError(
        `the label ${key}=${value} does not fit GCP's label rules once escaped (${labelKey}=${labelValue})`,
        'use shorter label keys and values',
      );
    }
    encoded[labelKey] = labelValue;
  }
  return encoded;
}

export function decodeLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).map(([key, value]) => [unescapeName(key) ?? key, unescapeName(value) ?? value]));
}

function escapeOutside(text: string, allowed: RegExp): string {
  let out = '';
  for (const char of text) {
    if (allowed.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Undefined when `text` is not an escaped name (a secret keybroker did not write). */
function unescapeName(text: string): string | undefined {
  const bytes: number[] = [];
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    if (char !== '_') {
      bytes.push(...Buffer.from(char, 'utf8'));
      continue;
    }
    const hex = text.slice(index + 1, index + 3);
    if (!/^[0-9a-f]{2}$/.test(hex)) return undefined;
    bytes.push(parseInt(hex, 16));
    index += 2;
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

function versionNumberOf(resourceName: string): string {
  return resourceName.split('/').at(-1) || 'unknown';
}

function timestampOf(stamp: Timestamp): Date | undefined {
  if (!stamp || stamp.seconds === undefined || stamp.seconds === null) return undefined;
  return new Date(Number(String(stamp.seconds)) * 1000 + Math.floor(Number(stamp.nanos ?? 0) / 1e6));
}

/** The payload's checksum when the server sent one (a proto3 `optional` field: absent is not 0). */
function checksumOf(payload: { dataCrc32c?: unknown; _dataCrc32c?: unknown } | null | undefined): number | undefined {
  if (!payload) return undefined;
  if ('_dataCrc32c' in payload && payload._dataCrc32c !== 'dataCrc32c') return undefined;
  if (payload.dataCrc32c === undefined || payload.dataCrc32c === null) return undefined;
  return Number(String(payload.dataCrc32c));
}

let crcTable: Uint32Array | undefined;
/** CRC32C (Castagnoli), the checksum Secret Manager keeps for each payload. */
export function crc32c(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

export function mapGcpError(error: unknown, context: FailedCall & { project: string }): KeybrokerError {
  if (error instanceof KeybrokerError) return error;
  const subject = context.secret ? `secret "${context.secret}" in ${context.where}` : context.where;
  if (error instanceof RetryBudgetExceeded) {
    return storeTimedOut(context.where, context.what, context.timeoutMs);
  }
  const err = error as {
    code?: unknown;
    details?: string;
    message?: string;
    reason?: string;
    response?: { status?: number; data?: { error?: unknown; error_description?: unknown } };
  };
  const message = (err.details || (err.message ?? String(error)).replace(/^\d+ [A-Z_]+: /, '')).split('\n')[0]!;

  // Errors of Google's OAuth token endpoint (a refresh token revoked, expired or needing reauth).
  const oauthError = typeof err.response?.data?.error === 'string' ? err.response.data.error : undefined;
  if (oauthError || /invalid_grant|invalid_rapt|reauth/i.test(message)) {
    const description = typeof err.response?.data?.error_description === 'string' ? err.response.data.error_description : message;
    return new NotAuthenticated(
      `Google rejected your application default credentials (${oauthError ?? 'invalid_grant'}: ${description})`,
      context.loginFix,
    );
  }
  if (/Could not load the default credentials/i.test(message)) {
    return new NotAuthenticated(`no Google application default credentials found for ${context.where}`, context.loginFix);
  }
  if (/credential file|does not exist, or it is not a file|client_id|refresh_token field|"authorized_user" type/i.test(message)) {
    return new NotAuthenticated(`the Google application default credentials are unusable (${message})`, context.loginFix);
  }
  if (typeof err.code !== 'number') {
    const code = typeof err.code === 'string' ? err.code : '';
    if (
      NETWORK_ERROR_CODES.includes(code) ||
      /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|socket hang up|ECONNRESET|fetch failed|network timeout|timeout of \d+ms exceeded/i.test(message)
    ) {
      return new StoreUnreachable(
        `cannot reach Google's sign-in service for ${context.where} (${code || message})`,
        'check your network or VPN',
      );
    }
    return new StoreUnreachable(`${context.what} failed at ${context.where} (${message})`, "run 'keybroker doctor' for details");
  }
  // gax gives up retrying with DEADLINE_EXCEEDED even when no connection was ever made.
  const connectFailure = /No connection established\. Last error: (?:Error: )?(.*?)(?:\. Resolution note|,|$)/.exec(err.message ?? '')?.[1];
  if (connectFailure && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED)) {
    return new StoreUnreachable(
      `cannot reach ${context.where} (${connectFailure.trim()})`,
      'check your network or VPN and the store endpoint',
    );
  }
  switch (err.code) {
    case grpc.status.NOT_FOUND:
      return new SecretNotFound(
        `${subject} does not exist (${message})`,
        'ask your admin to provision your key (keybroker admin put), or check "secret" and "store.project" in the profile',
      );
    case grpc.status.FAILED_PRECONDITION: {
      const state = /\b(DISABLED|DESTROYED)\b/.exec(message)?.[1];
      if (state) {
        return new SecretNotFound(
          `the version of ${subject} that keybroker reads is ${state.toLowerCase()} (revoked): ${message}`,
          'ask your admin for a new key (keybroker admin rotate), or to enable the version again',
        );
      }
      return new StoreUnreachable(`${context.what} was refused by ${context.where} (${message})`, "run 'keybroker doctor' for details");
    }
    case grpc.status.PERMISSION_DENIED:
      if (/has not been used|is disabled|SERVICE_DISABLED/i.test(message) || err.reason === 'SERVICE_DISABLED') {
        return new AccessDenied(
          `the Secret Manager API is not enabled for project ${context.project} (${message})`,
          `ask your admin to run 'gcloud services enable secretmanager.googleapis.com --project ${context.project}'`,
        );
      }
      return new AccessDenied(
        `access denied to ${subject}${/may not exist/i.test(message) ? ' (or it does not exist)' : ''} (${message})`,
        'ask your admin to grant you roles/secretmanager.secretAccessor on your key (keybroker admin policy), or check "store.project"',
      );
    case grpc.status.UNAUTHENTICATED:
      return new NotAuthenticated(`Google did not accept your credentials for ${context.where} (${message})`, context.loginFix);
    case grpc.status.INVALID_ARGUMENT:
      return new ConfigError(
        `${context.where} refused ${context.what} as invalid (${message})`,
        'check "store" and "secret" in the profile',
      );
    case grpc.status.DEADLINE_EXCEEDED:
    case grpc.status.CANCELLED:
      return storeTimedOut(context.where, context.what, context.timeoutMs);
    case grpc.status.UNAVAILABLE:
      return new StoreUnreachable(`cannot reach ${context.where} (${message})`, 'check your network or VPN and the store endpoint');
    case grpc.status.RESOURCE_EXHAUSTED:
      return storeThrottling(context.where, `RESOURCE_EXHAUSTED: ${message}`);
    default:
      return new StoreUnreachable(
        `${context.what} failed at ${context.where} (${grpc.status[err.code] ?? err.code}: ${message})`,
        "try again in a minute, or run 'keybroker doctor'",
      );
  }
}

/** @alias of secretIdFor: the loaded chunk's exports are its ProviderModule (src/loader/chunks.ts), so it exports storageName. */
export const storageName = secretIdFor;

export const module: ProviderModule = { storeSchema, createProvider, storageName };
