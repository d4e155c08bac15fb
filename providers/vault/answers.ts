// Vault's answers, typed: the shapes of the JSON bodies keybroker reads (Vault's HTTP API docs).
// Loose objects: Vault adds fields over versions; only what keybroker uses is checked.
import * as v from 'valibot';
import { StoreUnreachable } from '../../src/kernel/errors.ts';

const text = v.optional(v.nullable(v.string()));
const stringMap = v.optional(v.nullable(v.record(v.string(), v.string())));

/** Every answer: `errors` on a failure, `data` or `auth` on a success. */
export const Envelope = v.looseObject({
  errors: v.optional(v.nullable(v.array(v.unknown()))),
  data: v.optional(v.unknown()),
  auth: v.optional(v.unknown()),
});
export type Envelope = v.InferOutput<typeof Envelope>;

/** auth/token/lookup-self's `data`: the fields keybroker uses. */
export const TokenInfo = v.looseObject({
  display_name: text,
  entity_id: text,
  path: text,
  meta: stringMap,
  ttl: v.optional(v.number()),
  creation_ttl: v.optional(v.number()),
  renewable: v.optional(v.boolean()),
});
export type TokenInfo = v.InferOutput<typeof TokenInfo>;

/** A login's `auth`. */
export const LoginAuth = v.looseObject({ client_token: v.pipe(v.string(), v.minLength(1)) });

/** identity/entity/id/:id's `data`. */
export const Entity = v.looseObject({ name: text });

/** One version's metadata (KV v2): in a read's `data.metadata`, a write's `data`, and metadata's `versions`. */
export const KvVersionMetadata = v.looseObject({
  created_time: text,
  deletion_time: text,
  destroyed: v.optional(v.nullable(v.boolean())),
  version: v.optional(v.number()),
  custom_metadata: stringMap,
});
export type KvVersionMetadata = v.InferOutput<typeof KvVersionMetadata>;

/** A KV v2 read's `data`: the map (null once deleted or destroyed) and its version's metadata. */
export const KvV2Read = v.looseObject({
  data: v.optional(v.nullable(v.record(v.string(), v.unknown()))),
  metadata: v.optional(v.nullable(KvVersionMetadata)),
});

/** A KV v1 read's `data`: the map itself. */
export const KvV1Read = v.record(v.string(), v.unknown());

/** A KV v2 write's `data`: the version it made. */
export const KvWritten = v.looseObject({ version: v.number() });

/** metadata/:path's `data` (KV v2). */
export const KvMetadata = v.looseObject({
  current_version: v.number(),
  created_time: text,
  updated_time: text,
  custom_metadata: stringMap,
  versions: v.optional(v.nullable(v.record(v.string(), KvVersionMetadata))),
});
export type KvMetadata = v.InferOutput<typeof KvMetadata>;

/** A LIST's `data`: names, folders ending in "/". */
export const ListKeys = v.looseObject({ keys: v.optional(v.nullable(v.array(v.string()))) });

/** auth/<oidc>/oidc/auth_url's `data` (an empty URL when the redirect is not allowed). */
export const OidcAuthUrl = v.looseObject({ auth_url: text });

/**
 * `value` as `schema` says, or the typed error for an answer keybroker does not understand (a proxy,
 * a web page, another API). Names the field and what was expected, never the value received.
 */
export function answerOf<S extends v.GenericSchema>(schema: S, value: unknown, answer: string, where: string): v.InferOutput<S> {
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const field = v.getDotPath(issue) ?? '(the body)';
  throw new StoreUnreachable(
    `${where} answered ${answer} with something keybroker does not understand (${field}: expected ${issue.expected ?? issue.type})`,
    'check that VAULT_ADDR (or "address" in the store) is the Vault API itself, not a proxy or a web page; if it is, tell your Vault operators',
  );
}
