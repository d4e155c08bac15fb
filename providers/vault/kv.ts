// Vault's KV secrets engine, version 1 or 2: its paths, what it holds for a key, and its metadata.
import { createHash } from 'node:crypto';
import { SecretNotFound } from '../../src/kernel/errors.ts';
import type { SecretSummary, SecretValue } from '../provider.ts';
import { answerOf, KvMetadata, KvV1Read, KvV2Read } from './answers.ts';
import { send, unexpected, type Call, type Vault } from './connection.ts';
import { denied, loginFix } from './token.ts';

/** A raw key (not a JSON object) is written under this field, which is keybroker's default `field`. */
const RAW_VALUE_FIELD = 'api_key';

const encoded = (name: string) => name.split('/').map(encodeURIComponent).join('/');

/** Where a secret's current data is read and written (v2: `<mount>/data/…`). */
export const dataPath = ({ kvVersion, mount }: Pick<Vault, 'kvVersion' | 'mount'>, name: string): string =>
  kvVersion === 2 ? `${mount}/data/${encoded(name)}` : `${mount}/${encoded(name)}`;

/** Where a secret's metadata is (v2: `<mount>/metadata/…`; v1 has none apart from the data) and where a folder is listed. */
export const metadataPath = ({ kvVersion, mount }: Pick<Vault, 'kvVersion' | 'mount'>, name: string): string =>
  kvVersion === 2 ? `${mount}/metadata/${encoded(name)}` : `${mount}/${encoded(name)}`;

export const secretLabel = (name: string): string => `secret "${name}"`;

/** A read's `data` as the key and its version: KV v2 wraps the map with its version's metadata, v1 is the map. */
export function kvValue(data: unknown, kvVersion: 1 | 2, name: string, where: string): SecretValue {
  const answer = `the read of ${secretLabel(name)}`;
  if (kvVersion === 1) {
    const map = data === undefined || data === null ? undefined : answerOf(KvV1Read, data, answer, where);
    return { value: valueFromMap(map, name, where), version: contentVersion(map) };
  }
  const read = answerOf(KvV2Read, data ?? {}, answer, where);
  const result: SecretValue = { value: valueFromMap(read.data, name, where), version: String(read.metadata?.version ?? '') };
  if (read.metadata?.created_time) result.createdAt = new Date(read.metadata.created_time);
  // delete_version_after schedules a version's deletion: that is when this key stops being served.
  if (read.metadata?.deletion_time) result.expiresAt = new Date(read.metadata.deletion_time);
  return result;
}

/** KV holds a map: a one-field map of a string is the key itself, anything else is the JSON form. */
function valueFromMap(map: Record<string, unknown> | null | undefined, name: string, where: string): string {
  if (!map) throw new SecretNotFound(`secret "${name}" in ${where} has no data (destroyed?)`, 'ask your admin for a new key');
  const entries = Object.entries(map);
  return entries.length === 1 && typeof entries[0]![1] === 'string' ? entries[0]![1] : JSON.stringify(map);
}

/** What `vault kv put` would hold: a JSON object's fields as they are, a raw key under api_key. */
export function kvData(value: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // not JSON: a raw key
  }
  return { [RAW_VALUE_FIELD]: value };
}

/** KV v1 keeps no versions: a digest of the content stands in (it changes when the content does). */
export function contentVersion(map: unknown): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(map)).digest('hex').slice(0, 12)}`;
}

/** A KV v2 secret as an admin lists it: enabled while its current version is neither destroyed nor deleted. */
export function summaryFromMetadata(name: string, metadata: KvMetadata | undefined, now = Date.now()): SecretSummary {
  const summary: SecretSummary = { name, enabled: false, labels: { ...(metadata?.custom_metadata ?? {}) } };
  if (!metadata) return summary;
  const current = metadata.versions?.[String(metadata.current_version)];
  const deletedAt = current?.deletion_time ? Date.parse(current.deletion_time) : undefined;
  summary.enabled = Boolean(current) && !current!.destroyed && (deletedAt === undefined || deletedAt > now);
  summary.version = String(metadata.current_version);
  if (metadata.created_time) summary.createdAt = new Date(metadata.created_time);
  if (metadata.updated_time) summary.updatedAt = new Date(metadata.updated_time);
  if (deletedAt !== undefined && deletedAt > now) summary.expiresAt = new Date(deletedAt);
  return summary;
}

/** What the metadata path answers (v1: the data itself), or undefined when the secret does not exist. */
async function metadataAnswer(vault: Vault, call: Call, tokenValue: string, name: string): Promise<unknown> {
  const response = await send(vault, call, 'GET', metadataPath(vault, name), { token: tokenValue });
  if (response.status === 200) return response.body?.data;
  if (response.status === 404 && !response.body?.errors?.length) return undefined;
  if (response.status === 403) throw await denied(vault, call, secretLabel(name), 'read', `${vault.mount}/metadata/${name}`);
  throw unexpected(vault, response, call, secretLabel(name), loginFix(vault));
}

/** A secret's metadata (KV v2), or undefined when it does not exist. */
export async function readMetadata(vault: Vault, call: Call, tokenValue: string, name: string): Promise<KvMetadata | undefined> {
  const data = await metadataAnswer(vault, call, tokenValue, name);
  return data === undefined ? undefined : answerOf(KvMetadata, data, `the metadata of ${secretLabel(name)}`, vault.where);
}

/** Whether the secret exists (KV v1 or v2). */
export async function secretExists(vault: Vault, call: Call, tokenValue: string, name: string): Promise<boolean> {
  return (await metadataAnswer(vault, call, tokenValue, name)) !== undefined;
}
