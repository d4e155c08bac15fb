// HashiCorp Vault (and OpenBao) KV secrets, as the developer the vault CLI says they are: the
// token in VAULT_TOKEN or ~/.vault-token, or a login method (approle, userpass, ldap, jwt, oidc).
// Vault's HTTP API directly over node:http(s): node-vault bundles axios (331 KB minified, no
// AbortSignal, so no hard bound on a call), reads neither ~/.vault-token nor VAULT_CACERT and has
// no OIDC flow; the API needs ~15 calls. The parts: vault/connection.ts (settings, one HTTP call,
// errors), vault/token.ts (the developer's token), vault/kv.ts (KV v1/v2), vault/answers.ts
// (Vault's answers, typed), vault/oidc-login.ts (`keybroker login`).
import { ConfigError, SecretNotFound, StoreUnreachable, UsageError } from '../src/kernel/errors.ts';
import { isPlainHttpToAnotherHost } from '../src/kernel/transport.ts';
import type {
  Provider,
  ProviderContext,
  ProviderModule,
  SecretSummary,
  SecretValue,
  StoreConfig,
  StoreIdentity,
  WriteOptions,
  WriteResult,
} from './provider.ts';
import { storeSchema } from './vault.schema.ts';
import { answerOf, Entity, KvVersionMetadata, KvWritten, ListKeys } from './vault/answers.ts';
import {
  deadline,
  send,
  unexpected,
  vaultContext,
  vaultMessage,
  type Vault,
  type VaultResponse,
  type VaultStore,
} from './vault/connection.ts';
import {
  contentVersion,
  dataPath,
  kvData,
  kvValue,
  metadataPath,
  readMetadata,
  secretExists,
  secretLabel,
  summaryFromMetadata,
} from './vault/kv.ts';
import { interactiveLogin } from './vault/oidc-login.ts';
import { currentSession, denied, loginCommand, loginFix, settle, token, tokenInfo, userFromToken } from './vault/token.ts';

/** Re-exported: a provider module is its schema and its factory (ProviderModule). */
export { storeSchema };

export function createProvider(config: StoreConfig, context: ProviderContext): Provider {
  const store = config as unknown as VaultStore;
  const address = vaultAddress(store, context);
  const vault = vaultContext(store, context, address);
  return {
    describe: () => vault.where,
    loginCommand: () => loginCommand(vault),
    ...(vault.auth.method === 'oidc' ? { interactiveLogin: (io) => interactiveLogin(vault, io) } : {}),
    whoami: () => whoami(vault),
    readCurrent: (name) => readCurrent(vault, name),
    write: (name, value, options) => (vault.kvVersion === 1 ? writeKv1(vault, name, value) : writeKv2(vault, name, value, options)),
    list: (prefix) => listSecrets(vault, prefix),
    revoke: (name, { purge }) => revokeSecret(vault, name, purge),
  };
}

/** The store's address, else VAULT_ADDR, else the vault CLI's default; plain http:// to another host only when allowed. */
function vaultAddress(store: VaultStore, context: ProviderContext): string {
  const address = (store.address ?? context.env['VAULT_ADDR'] ?? 'https://127.0.0.1:8200').replace(/\/+$/, '');
  if (isPlainHttpToAnotherHost(address) && !context.allowInsecureHttp) {
    // Every request carries X-Vault-Token (and a login its password or secret id).
    throw new ConfigError(
      `${store.address ? '"address" of the store' : 'VAULT_ADDR'} is plain http:// to ${new URL(address).host}, another machine: the Vault token and your key would cross the network unencrypted (profile "${context.profile}")`,
      'use the Vault server\'s https:// address (or, only on a network you trust end to end, set "allowInsecureHttp": true in the profile)',
    );
  }
  return address;
}

async function whoami(vault: Vault): Promise<StoreIdentity> {
  const call = deadline(vault, 'token lookup-self');
  const info = await tokenInfo(vault, call);
  let entityName: string | null | undefined;
  if (info.entity_id) {
    const { token: tokenValue } = await currentSession(vault, call);
    const entity = await send(
      vault,
      { ...call, what: 'identity entity lookup' },
      'GET',
      `identity/entity/id/${encodeURIComponent(info.entity_id)}`,
      { token: tokenValue },
    );
    // Reading one's own entity is in Vault's default policy, but may be removed: then the alias name serves.
    if (entity.status === 200) entityName = answerOf(Entity, entity.body?.data ?? {}, 'identity entity lookup', vault.where).name;
  }
  const user = userFromToken(info, entityName);
  if (!user) {
    throw new ConfigError(
      `the token for ${vault.where} carries no user name (display name "${info.display_name ?? ''}")`,
      `log in as yourself (${loginCommand(vault)}), or set "user": "os" in the profile`,
    );
  }
  return { user, principal: `${info.display_name ?? user}${info.entity_id ? ` (entity ${info.entity_id})` : ''}` };
}

async function readCurrent(vault: Vault, name: string): Promise<SecretValue> {
  const call = deadline(vault, `read of ${secretLabel(name)}`);
  try {
    const tokenValue = await token(vault, call);
    const response = await send(vault, call, 'GET', dataPath(vault, name), { token: tokenValue });
    if (response.status === 200) return kvValue(response.body?.data, vault.kvVersion, name, vault.where);
    if (response.status === 403) throw await denied(vault, call, secretLabel(name), 'read', dataPath(vault, name));
    if (response.status !== 404) throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
    // A 404 with the version's metadata: it was deleted or destroyed (revoked).
    const metadata = revokedVersion(vault, name, response.body?.data);
    if (metadata) {
      throw new SecretNotFound(
        `${secretLabel(name)} in ${vault.where} was revoked (version ${metadata.version} ${metadata.destroyed ? 'destroyed' : 'deleted'})`,
        'ask your admin for a new key',
      );
    }
    if (response.body?.errors?.length) throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
    throw new SecretNotFound(
      `${secretLabel(name)} does not exist in ${vault.where}`,
      'ask your admin to provision your key (keybroker admin put), or check "secret" and "mount" in the profile',
    );
  } finally {
    await settle(vault);
  }
}

/** The metadata of a KV v2 version that a 404 says was deleted or destroyed; undefined for a plain 404. */
function revokedVersion(vault: Vault, name: string, data: unknown): KvVersionMetadata | undefined {
  const metadata =
    data && typeof data === 'object' && 'metadata' in data
      ? answerOf(KvVersionMetadata, data.metadata ?? {}, `the read of ${secretLabel(name)}`, vault.where)
      : undefined;
  return metadata?.deletion_time || metadata?.destroyed ? metadata : undefined;
}

async function writeKv1(vault: Vault, name: string, value: string): Promise<WriteResult> {
  const call = deadline(vault, `write of ${secretLabel(name)}`);
  const tokenValue = await token(vault, call);
  const data = kvData(value);
  const existed = await secretExists(vault, call, tokenValue, name);
  const response = await send(vault, call, 'POST', dataPath(vault, name), { token: tokenValue, body: data });
  if (response.status === 403) throw await denied(vault, call, secretLabel(name), existed ? 'update' : 'create', dataPath(vault, name));
  if (response.status !== 200 && response.status !== 204) throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
  return { version: contentVersion(data), created: !existed };
}

async function writeKv2(vault: Vault, name: string, value: string, options: WriteOptions): Promise<WriteResult> {
  const call = deadline(vault, `write of ${secretLabel(name)}`);
  const tokenValue = await token(vault, call);
  const data = kvData(value);
  const casRefused = (answer: VaultResponse) => answer.status === 400 && /check-and-set/i.test(vaultMessage(answer));
  // check-and-set 0 creates only a secret that does not exist; otherwise the version read is the one replaced.
  let metadata: Awaited<ReturnType<typeof readMetadata>>;
  let response = await send(vault, call, 'POST', dataPath(vault, name), { token: tokenValue, body: { options: { cas: 0 }, data } });
  if (casRefused(response)) {
    metadata = await readMetadata(vault, call, tokenValue, name);
    response = await send(vault, call, 'POST', dataPath(vault, name), {
      token: tokenValue,
      body: { options: { cas: metadata?.current_version ?? 0 }, data },
    });
    if (casRefused(response))
      throw new StoreUnreachable(`${secretLabel(name)} in ${vault.where} changed while it was being written`, 'run the command again');
  }
  if (response.status === 403) throw await denied(vault, call, secretLabel(name), metadata ? 'update' : 'create', dataPath(vault, name));
  if (response.status !== 200) throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
  const { version } = answerOf(KvWritten, response.body?.data, `the write of ${secretLabel(name)}`, vault.where);
  if (Object.keys(options.labels).length || options.description) {
    const labels = {
      ...(metadata?.custom_metadata ?? {}),
      ...options.labels,
      ...(options.description ? { description: options.description } : {}),
    };
    const tagged = await send(vault, call, 'POST', metadataPath(vault, name), { token: tokenValue, body: { custom_metadata: labels } });
    if (tagged.status === 403) throw await denied(vault, call, secretLabel(name), 'update', metadataPath(vault, name));
    if (tagged.status !== 200 && tagged.status !== 204) throw unexpected(vault, tagged, call, secretLabel(name), loginFix(vault));
  }
  return { version: String(version), created: metadata === undefined };
}

/** Every secret under `prefix`: a walk of the folders from the prefix's own, one bounded call per page. */
async function* listSecrets(vault: Vault, prefix: string): AsyncGenerator<SecretSummary> {
  const pending = [prefix.slice(0, prefix.lastIndexOf('/') + 1)];
  while (pending.length) {
    const dir = pending.shift()!;
    for (const key of await listFolder(vault, dir)) {
      const full = dir + key;
      if (key.endsWith('/')) {
        if (full.startsWith(prefix) || prefix.startsWith(full)) pending.push(full);
      } else if (full.startsWith(prefix)) {
        yield await summarize(vault, full);
      }
    }
  }
  await settle(vault);
}

/** One folder's names (folders end in "/"); none when it does not exist. */
async function listFolder(vault: Vault, dir: string): Promise<string[]> {
  // Each page of the walk gets its own bound: a large store is many calls, each one bounded.
  const call = deadline(vault, `list of "${dir}"`);
  const tokenValue = await token(vault, call);
  // LIST as GET ?list=true, which Vault accepts too (proxies and Node's HTTP stack reject the LIST verb).
  const response = await send(vault, call, 'GET', `${metadataPath(vault, dir)}?list=true`, { token: tokenValue });
  if (response.status === 404 && !response.body?.errors?.length) return [];
  if (response.status === 403) throw await denied(vault, call, `"${dir}"`, 'list', metadataPath(vault, dir));
  if (response.status !== 200) throw unexpected(vault, response, call, `"${dir}"`, loginFix(vault));
  return answerOf(ListKeys, response.body?.data ?? {}, `the list of "${dir}"`, vault.where).keys ?? [];
}

async function summarize(vault: Vault, name: string): Promise<SecretSummary> {
  if (vault.kvVersion === 1) return { name, enabled: true, labels: {} };
  const call = deadline(vault, `metadata read of ${secretLabel(name)}`);
  return summaryFromMetadata(name, await readMetadata(vault, call, await token(vault, call), name));
}

async function revokeSecret(vault: Vault, name: string, purge: boolean): Promise<void> {
  const call = deadline(vault, `${purge ? 'purge' : 'revoke'} of ${secretLabel(name)}`);
  if (vault.kvVersion === 1 && !purge) {
    throw new UsageError(
      `KV version 1 at mount "${vault.mount}" keeps no versions, so a revoke there cannot be undone`,
      'revoke with --purge to delete it for good',
    );
  }
  const tokenValue = await token(vault, call);
  // Vault answers a delete of a missing path with 204: look first, so a typo is not reported as done.
  if (!(await secretExists(vault, call, tokenValue, name)))
    throw new SecretNotFound(`${secretLabel(name)} does not exist in ${vault.where}`, 'check the name (keybroker admin list)');
  // Soft: delete the latest version (vault kv undelete brings it back). Purge: delete metadata and every version.
  const target = purge ? metadataPath(vault, name) : dataPath(vault, name);
  const response = await send(vault, call, 'DELETE', target, { token: tokenValue });
  if (response.status === 403) throw await denied(vault, call, secretLabel(name), 'delete', target);
  if (response.status !== 204 && response.status !== 200) throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
  await settle(vault);
}

export const module: ProviderModule = { storeSchema, createProvider };
