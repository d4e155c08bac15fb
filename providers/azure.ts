// Azure Key Vault, as the developer the Azure CLI says they are (`az login`), or as whoever the
// DefaultAzureCredential chain finds (environment/service principal, workload identity,
// managed identity, then the developer tools) when the profile asks for it.
import { SecretClient, type SecretProperties } from '@azure/keyvault-secrets';
import { AzureCliCredential, DefaultAzureCredential } from '@azure/identity';
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth';
import { AccessDenied, ConfigError, KeybrokerError, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../src/kernel/errors.ts';
import { classifyStoreError, throttlingOnly, withStoreRetry, type RetryClass } from '../src/kernel/retry.ts';
import {
  jwtClaims,
  NETWORK_ERROR_CODES,
  readCaBundle,
  storeThrottling,
  storeTimedOut,
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
import { storeSchema } from './azure.schema.ts';

/** Re-exported: a provider module is its schema and its factory (ProviderModule). */
export { storeSchema };

export interface AzureStore {
  type: 'azure';
  vaultUrl: string;
  tenant?: string;
  credential?: 'cli' | 'default';
  userClaim?: 'upn' | 'oid';
  caFile?: string;
  disableChallengeResourceVerification?: boolean;
}

/**
 * Key Vault names allow only [0-9a-zA-Z-]{1,127} and compare case-insensitively, so a logical
 * name ("claude-code/keys/alice@corp.com") is mapped one character at a time, and back:
 *   a-z and 0-9 stay; "/" becomes "--"; every other character (including "-", ".", "@",
 *   upper-case letters and non-ASCII) becomes "-" plus two lower-case hex digits per UTF-8 byte.
 * "claude-code/keys/alice@corp.com" -> "claude-2dcode--keys--alice-40corp-2ecom". The output
 * uses only [a-z0-9-] and decodes uniquely, so two logical names never share a vault name.
 */
export function keyVaultName(logical: string): string {
  let out = '';
  for (const char of logical) {
    if (/[a-z0-9]/.test(char)) out += char;
    else if (char === '/') out += '--';
    else for (const byte of Buffer.from(char, 'utf8')) out += `-${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The logical name of a vault name keybroker made; undefined for any other secret in the vault. */
export function logicalName(vaultName: string): string | undefined {
  const bytes: number[] = [];
  const name = vaultName.toLowerCase();
  for (let at = 0; at < name.length; ) {
    const char = name[at]!;
    if (/[a-z0-9]/.test(char)) {
      bytes.push(char.charCodeAt(0));
      at += 1;
    } else if (name[at + 1] === '-') {
      bytes.push(0x2f);
      at += 2;
    } else {
      const hex = name.slice(at + 1, at + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return undefined;
      const byte = parseInt(hex, 16);
      // Only what the encoder would have escaped: a byte it writes literally means a foreign name.
      if (/[a-z0-9/]/.test(String.fromCharCode(byte))) return undefined;
      bytes.push(byte);
      at += 3;
    }
  }
  const text = Buffer.from(bytes).toString('utf8');
  return keyVaultName(text) === name ? text : undefined;
}

/** The token audience for a vault host: the public cloud's unless the host is a sovereign cloud's. */
function vaultResource(vaultUrl: string): string {
  const host = new URL(vaultUrl).hostname;
  const suffix = ['vault.azure.net', 'vault.azure.cn', 'vault.usgovcloudapi.net', 'vault.microsoftazure.de', 'managedhsm.azure.net'].find(
    (domain) => host.endsWith(`.${domain}`),
  );
  return `https://${suffix ?? 'vault.azure.net'}`;
}

export function createProvider(config: StoreConfig, context: ProviderContext): Provider {
  const az = azureContext(config as unknown as AzureStore, context);
  return {
    describe: () => az.where,
    loginCommand: () => azLogin(az.store.tenant),
    whoami: () => whoami(az),
    readCurrent: (logical) => readCurrent(az, logical),
    write: (logical, value, options) => writeSecret(az, logical, value, options),
    list: (prefix) => listSecrets(az, prefix),
    revoke: (logical, { purge }) => (purge ? purgeSecret(az, logical) : disableSecret(az, logical)),
  };
}

/** What keybroker says about one vault: where it is, which profile, and the tenant last asked for a token. */
export interface AzureTarget {
  store: AzureStore;
  vaultUrl: string;
  where: string;
  profile: string;
  timeoutMs: number;
  /** The tenant the last token was asked for: the vault's own, from its challenge, unless configured. */
  tenantAsked: string | undefined;
}

/** What every call of one provider shares: the target, the SDK client, and the provider's context. */
interface AzureContext extends AzureTarget {
  resource: string;
  credential: TokenCredential;
  client: SecretClient;
  context: ProviderContext;
}

const azLogin = (tenant: string | undefined) => `az login${tenant ? ` --tenant ${tenant}` : ''}`;

function azureContext(store: AzureStore, context: ProviderContext): AzureContext {
  const vaultUrl = store.vaultUrl.replace(/\/+$/, '');
  const target: AzureTarget = {
    store,
    vaultUrl,
    where: `Azure Key Vault ${vaultUrl}${store.tenant ? ` (tenant ${store.tenant})` : ''}`,
    profile: context.profile,
    timeoutMs: context.timeoutMs,
    tenantAsked: store.tenant,
  };
  const tlsOptions = store.caFile ? { tlsOptions: { ca: readCaBundle(store.caFile, 'store.caFile', context.profile) } } : {};
  let inner: TokenCredential | undefined;
  const credential = watchedCredential(target, () => (inner ??= innerCredential(store, context, tlsOptions)));
  const client = new SecretClient(vaultUrl, credential, {
    retryOptions: NO_SDK_RETRIES,
    ...tlsOptions,
    ...(store.disableChallengeResourceVerification ? { disableChallengeResourceVerification: true } : {}),
  });
  return Object.assign(target, { resource: vaultResource(vaultUrl), credential, client, context });
}

// The SDK retries nothing: one policy (src/kernel/retry.ts) bounds attempts and waits within context.timeoutMs.
const NO_SDK_RETRIES = { maxRetries: 0 };

/** The Azure CLI's login, or the DefaultAzureCredential chain when the profile asks for it. */
function innerCredential(store: AzureStore, context: ProviderContext, tlsOptions: object): TokenCredential {
  if (store.credential !== 'default') {
    return new AzureCliCredential({ ...(store.tenant ? { tenantId: store.tenant } : {}), processTimeoutInMs: context.timeoutMs });
  }
  const authority = context.env['AZURE_AUTHORITY_HOST'];
  // Instance discovery asks login.microsoftonline.com, which a private authority is not.
  const privateAuthority =
    authority !== undefined &&
    !/\.microsoftonline\.(com|us|de)\/?$|\.chinacloudapi\.cn\/?$|login\.partner\.microsoftonline\.cn/.test(authority);
  return new DefaultAzureCredential({
    ...(store.tenant ? { tenantId: store.tenant } : {}),
    ...(privateAuthority ? { disableInstanceDiscovery: true } : {}),
    processTimeoutInMs: context.timeoutMs,
    retryOptions: NO_SDK_RETRIES,
    ...tlsOptions,
  });
}

/** Every token request passes here: to learn the tenant the vault asked for and name the fix. */
function watchedCredential(target: AzureTarget, inner: () => TokenCredential): TokenCredential {
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      const tenant = options?.tenantId ?? target.store.tenant;
      target.tenantAsked = tenant;
      try {
        return await inner().getToken(scopes, options);
      } catch (error) {
        throw credentialError(error, tenant, target);
      }
    },
  };
}

/** A failed token request as the typed error that names the fix (another tenant, no az, no network, not signed in). */
export function credentialError(error: unknown, tenant: string | undefined, target: AzureTarget): KeybrokerError {
  if (error instanceof KeybrokerError) return error;
  const { store, vaultUrl, where, profile } = target;
  const err = error as { name?: string; message?: string };
  // Entra ID's own reason (AADSTS code and sentence) says more than the SDK's first line.
  const entraReason = /AADSTS\d+:[^.]*\./.exec(err.message ?? '')?.[0];
  const message = entraReason ?? (err.message ?? String(error)).split('\n').find((line) => line.trim()) ?? '';
  const other = /not configured to acquire tokens for tenant (\S+?)\.? /.exec(err.message ?? '');
  if (other) {
    return new ConfigError(
      `the vault ${vaultUrl} belongs to tenant ${other[1]}, but profile "${profile}" signs in to tenant ${store.tenant}`,
      `set store.tenant to "${other[1]}" and run '${azLogin(other[1])}'`,
    );
  }
  if (err.name === 'AbortError') return new StoreUnreachable(`getting an Azure token for ${where} was cancelled`, 'try again');
  if (/Azure CLI could not be found/i.test(err.message ?? '')) {
    return new NotAuthenticated(
      `the Azure CLI (az) is not installed, and profile "${profile}" signs in with it`,
      `install it (https://aka.ms/azure-cli) and run '${azLogin(tenant)}', or set store.credential to "default"`,
    );
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|network/i.test(err.message ?? '')) {
    return new StoreUnreachable(
      `cannot reach Microsoft Entra ID for a token (${message})`,
      'check your network or VPN, and AZURE_AUTHORITY_HOST if set',
    );
  }
  const how = store.credential === 'default' ? 'with the DefaultAzureCredential chain' : 'with the Azure CLI';
  return new NotAuthenticated(
    `not signed in to Azure${tenant ? ` (tenant ${tenant})` : ''} ${how} for ${where} (${message})`,
    store.credential === 'default'
      ? `run '${azLogin(tenant)}', or set AZURE_TENANT_ID/AZURE_CLIENT_ID with a secret, certificate or federated token`
      : `run '${azLogin(tenant)}'`,
  );
}

/** A failed Key Vault call as the typed error that names the fix; `logical` names the secret, when there is one. */
export function mapAzureError(error: unknown, what: string, logical: string | undefined, target: AzureTarget): KeybrokerError {
  if (error instanceof KeybrokerError) return error;
  const { vaultUrl, where } = target;
  const err = error as { name?: string; message?: string; code?: string; statusCode?: number };
  const status = err.statusCode;
  const message = (err.message ?? String(error)).split(/\r?\n/).find((line) => line.trim()) ?? '';
  const subject = logical === undefined ? where : `secret "${logical}" (Key Vault name "${keyVaultName(logical)}") in ${where}`;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return storeTimedOut(where, what, target.timeoutMs);
  const answered = status === undefined ? undefined : statusError(status, err.message ?? '', message, subject, logical, target);
  if (answered) return answered;
  if (/challenge resource .* does not match/i.test(err.message ?? '')) {
    return new ConfigError(
      `${vaultUrl} is not a Key Vault URL the SDK recognises (${message})`,
      "use the vault's own URL (https://NAME.vault.azure.net), or set store.disableChallengeResourceVerification for a custom domain",
    );
  }
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return new StoreUnreachable(
      `the TLS certificate of ${vaultUrl} is not trusted (${code})`,
      "set store.caFile to your organisation's CA bundle (PEM), or check the vault URL",
    );
  }
  if ([...NETWORK_ERROR_CODES, 'REQUEST_SEND_ERROR'].includes(code) || /ECONNREFUSED|ENOTFOUND|socket hang up/.test(message)) {
    return new StoreUnreachable(`cannot reach ${where} (${code || message})`, 'check your network or VPN and store.vaultUrl');
  }
  if (status !== undefined && status >= 500)
    return new StoreUnreachable(`${where} is unavailable (HTTP ${status}: ${message})`, 'try again in a minute');
  if (status === 400) return new ConfigError(`${where} refused ${what} (${message})`, 'check store.vaultUrl and the secret name');
  return new StoreUnreachable(`${what} failed at ${where} (${err.name ?? 'error'}: ${message})`, "run 'keybroker doctor' for details");
}

/** Key Vault's answers that say what is wrong by their status alone; `text` is the whole error message. */
function statusError(
  status: number,
  text: string,
  message: string,
  subject: string,
  logical: string | undefined,
  target: AzureTarget,
): KeybrokerError | undefined {
  switch (status) {
    case 429:
      return storeThrottling(target.where, `HTTP 429: ${message}`);
    case 404:
      return new SecretNotFound(
        `${subject} does not exist`,
        'ask your admin to provision your key (keybroker admin put), or check "secret" in the profile',
      );
    case 403:
      if (/disabled/i.test(text)) return new SecretNotFound(`${subject} is disabled (revoked)`, 'ask your admin for a new key');
      // With a role on one secret only, Key Vault answers 403 (not 404) for every other name.
      return new AccessDenied(
        `access denied to ${subject}, or it does not exist and you have no role on it (${message})`,
        'ask your admin to assign you the "Key Vault Secrets User" role on your secret (keybroker admin policy)',
      );
    case 401:
      return new NotAuthenticated(`${target.where} rejected your Azure token (${message})`, `run '${azLogin(target.tenantAsked)}'`);
    case 409:
      return new SecretNotFound(
        `${subject} is deleted but recoverable, so its name cannot be reused`,
        `recover it ('az keyvault secret recover --id ${target.vaultUrl}/deletedsecrets/${logical ? keyVaultName(logical) : ''}') or purge it (keybroker admin revoke --purge)`,
      );
    default:
      return undefined;
  }
}

/**
 * One SDK call under the shared retry policy, within context.timeoutMs even when something does
 * not honour the signal (the `az` process). Calls that are not idempotent pass `throttlingOnly`.
 */
async function bounded<T>(
  az: AzureContext,
  what: string,
  logical: string | undefined,
  run: (signal: AbortSignal) => Promise<T>,
  classify: (error: unknown) => RetryClass = classifyStoreError,
): Promise<T> {
  const { context } = az;
  try {
    return await withStoreRetry(run, {
      budgetMs: context.timeoutMs,
      classify,
      ...(context.paceCall ? { pace: context.paceCall } : {}),
      onRetry: ({ attempt, waitMs, reason }) => {
        if (reason === 'throttled') context.onThrottle?.(waitMs);
        context.debug(`${what}: attempt ${attempt} ${reason}; retrying in ${waitMs} ms`);
      },
    });
  } catch (error) {
    throw mapAzureError(error, what, logical, az);
  }
}

/**
 * Every item of a paged listing, each page one bounded call. An iterator that threw is finished
 * (and the SDK's pages carry no continuation token), so a retried page re-opens the listing and
 * skips the pages already served.
 */
async function* pagesOf<T>(az: AzureContext, what: string, open: (signal: AbortSignal) => AsyncIterator<T[]>): AsyncGenerator<T> {
  let listing: { pages: AsyncIterator<T[]>; controller: AbortController } | undefined;
  let served = 0;
  for (;;) {
    const page = await bounded(az, what, undefined, async (signal) => {
      // The listing outlives one page's attempt: only an attempt in flight may cancel it.
      const cancel = () => listing?.controller.abort(signal.reason);
      signal.addEventListener('abort', cancel);
      try {
        if (!listing) {
          const controller = new AbortController();
          listing = { controller, pages: open(controller.signal) };
          for (let skipped = 0; skipped < served; skipped++) await listing.pages.next();
        }
        return await listing.pages.next();
      } catch (error) {
        listing = undefined;
        throw error;
      } finally {
        signal.removeEventListener('abort', cancel);
      }
    });
    if (page.done) return;
    served += 1;
    yield* page.value;
  }
}

function nameOf(logical: string): string {
  const name = keyVaultName(logical);
  if (name.length > 127) {
    throw new ConfigError(
      `secret "${logical}" maps to a Key Vault name of ${name.length} characters; Key Vault allows 127`,
      'use a shorter "secret" template in the profile',
    );
  }
  return name;
}

async function whoami(az: AzureContext): Promise<StoreIdentity> {
  const { store } = az;
  const token = await bounded(az, 'GetToken', undefined, (abortSignal) =>
    az.credential.getToken(`${az.resource}/.default`, { abortSignal, ...(store.tenant ? { tenantId: store.tenant } : {}) }),
  );
  const identity = identityFromClaims(jwtClaims(token?.token ?? ''), store.userClaim);
  if (!identity)
    throw new NotAuthenticated(
      `the Azure token for ${az.where} names no user (no upn or oid claim)`,
      `run '${azLogin(store.tenant)}' as yourself`,
    );
  return identity;
}

/** `{user}` from a token's claims: the UPN (lower case), else the object id; undefined when it names neither. */
export function identityFromClaims(claims: Record<string, unknown>, userClaim: AzureStore['userClaim']): StoreIdentity | undefined {
  const upn = [claims['upn'], claims['unique_name'], claims['preferred_username']].find(
    (value): value is string => typeof value === 'string' && value.includes('@'),
  );
  const oid = typeof claims['oid'] === 'string' ? claims['oid'] : '';
  const tid = typeof claims['tid'] === 'string' ? claims['tid'] : '';
  // A service principal's token has no UPN: its object id is the only stable name.
  const user = userClaim === 'oid' || !upn ? oid : upn.toLowerCase();
  if (!user) return undefined;
  const app = typeof claims['appid'] === 'string' ? `app ${claims['appid']}` : 'unknown principal';
  return { user, principal: `${upn ?? app} (object id ${oid}, tenant ${tid})` };
}

async function readCurrent(az: AzureContext, logical: string): Promise<SecretValue> {
  const name = nameOf(logical);
  const secret = await bounded(az, 'GetSecret', logical, (abortSignal) => az.client.getSecret(name, { abortSignal }));
  if (secret.value === undefined)
    throw new SecretNotFound(`secret "${logical}" in ${az.where} has no value`, 'ask your admin to store your key in it');
  const result: SecretValue = { value: secret.value, version: secret.properties.version ?? 'unknown' };
  if (secret.properties.createdOn) result.createdAt = secret.properties.createdOn;
  if (secret.properties.expiresOn) result.expiresAt = secret.properties.expiresOn;
  return result;
}

async function writeSecret(az: AzureContext, logical: string, value: string, options: WriteOptions): Promise<WriteResult> {
  const name = nameOf(logical);
  const written = await bounded(
    az,
    'SetSecret',
    logical,
    (abortSignal) =>
      az.client.setSecret(name, value, {
        abortSignal,
        tags: options.labels,
        ...(options.description ? { contentType: options.description } : {}),
      }),
    // Each set adds a version: sent again only when throttled, which the vault did not act on.
    throttlingOnly,
  );
  // Key Vault's set is create-or-add-version alike: a first version means it was just created.
  let versions = 0;
  for await (const _ of pagesOf(az, 'ListSecretVersions', (abortSignal) =>
    az.client.listPropertiesOfSecretVersions(name, { abortSignal }).byPage({ maxPageSize: 2 }),
  )) {
    if (++versions > 1) break;
  }
  return { version: written.properties.version ?? 'unknown', created: versions === 1 };
}

async function* listSecrets(az: AzureContext, prefix: string): AsyncGenerator<SecretSummary> {
  for await (const properties of pagesOf(az, 'ListSecrets', (abortSignal) => az.client.listPropertiesOfSecrets({ abortSignal }).byPage())) {
    const logical = logicalName(properties.name);
    if (logical === undefined || !logical.startsWith(prefix)) continue;
    const summary = summaryOf(logical, properties, properties.enabled !== false);
    const version = await currentVersion(az, properties.name, properties);
    if (version) summary.version = version;
    yield summary;
  }
  // Deleted-but-recoverable secrets are revoked keys too, until purged.
  for await (const deleted of pagesOf(az, 'ListDeletedSecrets', (abortSignal) => az.client.listDeletedSecrets({ abortSignal }).byPage())) {
    const logical = logicalName(deleted.name);
    if (logical?.startsWith(prefix)) yield summaryOf(logical, deleted.properties, false);
  }
}

/** A secret's attributes as an admin lists them (tags as labels), never its value. */
export function summaryOf(
  logical: string,
  properties: Pick<SecretProperties, 'tags' | 'createdOn' | 'updatedOn' | 'expiresOn'>,
  enabled: boolean,
): SecretSummary {
  const summary: SecretSummary = { name: logical, enabled, labels: { ...properties.tags } };
  if (properties.createdOn) summary.createdAt = properties.createdOn;
  if (properties.updatedOn) summary.updatedAt = properties.updatedOn;
  if (properties.expiresOn) summary.expiresAt = properties.expiresOn;
  return summary;
}

/** The current version of an item from a listing (the listing itself carries none). */
async function currentVersion(az: AzureContext, name: string, properties: SecretProperties): Promise<string | undefined> {
  if (properties.enabled !== false) {
    const latest = await bounded(az, 'GetSecret', logicalName(name), (abortSignal) => az.client.getSecret(name, { abortSignal }));
    return latest.properties.version;
  }
  let newest: SecretProperties | undefined;
  for await (const version of pagesOf(az, 'ListSecretVersions', (abortSignal) =>
    az.client.listPropertiesOfSecretVersions(name, { abortSignal }).byPage(),
  )) {
    if (!newest || (version.createdOn?.getTime() ?? 0) >= (newest.createdOn?.getTime() ?? 0)) newest = version;
  }
  return newest?.version;
}

/** Soft revoke: disable every version (a later write adds an enabled one; re-enabling restores it). */
async function disableSecret(az: AzureContext, logical: string): Promise<void> {
  const name = nameOf(logical);
  let found = 0;
  const enabled: string[] = [];
  for await (const version of pagesOf(az, 'ListSecretVersions', (abortSignal) =>
    az.client.listPropertiesOfSecretVersions(name, { abortSignal }).byPage(),
  )) {
    found += 1;
    if (version.enabled !== false && version.version) enabled.push(version.version);
  }
  if (!found)
    throw new SecretNotFound(
      `secret "${logical}" (Key Vault name "${name}") does not exist in ${az.where}`,
      'check the name (keybroker admin list)',
    );
  for (const version of enabled) {
    await bounded(az, 'UpdateSecret', logical, (abortSignal) =>
      az.client.updateSecretProperties(name, version, { abortSignal, enabled: false }),
    );
  }
}

async function purgeSecret(az: AzureContext, logical: string): Promise<void> {
  const name = nameOf(logical);
  // A repeated delete or purge after one that went through answers 404: only a throttled one is sent again.
  const poller = await bounded(
    az,
    'DeleteSecret',
    logical,
    (abortSignal) => az.client.beginDeleteSecret(name, { abortSignal, intervalInMs: 250 }),
    throttlingOnly,
  );
  const deleted = await bounded(az, 'GetDeletedSecret', logical, (abortSignal) => poller.pollUntilDone({ abortSignal }));
  // A vault without soft delete has no recovery id: the delete was already final.
  if (deleted.recoveryId)
    await bounded(az, 'PurgeDeletedSecret', logical, (abortSignal) => az.client.purgeDeletedSecret(name, { abortSignal }), throttlingOnly);
}

/** @alias of keyVaultName: the loaded chunk's exports are its ProviderModule (src/loader/chunks.ts), so it exports storageName. */
export const storageName = keyVaultName;

export const module: ProviderModule = { storeSchema, createProvider, storageName };
