// Part src/config/: configuration: files, layers, validation, the effective view. May use: kernel, providers.
// Configuration: JSON files in layers (machine-wide < user < environment < flags), validated
// with messages that name the file, the field and what is wrong.
import fs from 'node:fs';
import * as v from 'valibot';
import { ConfigError } from '../kernel/errors.ts';
import { parseDuration } from '../kernel/duration.ts';
import { machineConfigPath, userConfigPath } from '../kernel/paths.ts';
import { isPlainHttpToAnotherHost } from '../kernel/transport.ts';
import { storeTypes } from '../../providers/index.ts';
import { storeSchemas } from '../../providers/schemas.ts';
import type { StoreConfig } from '../../providers/provider.ts';

/** A duration string within [min, max]: "0s" or "99999999h" is refused here, not met at run time. */
const duration = (min: string, max: string) =>
  v.pipe(
    v.string(),
    v.check((text) => parseDuration(text) !== undefined, 'must be a duration such as "90s", "15m" or "1h"'),
    v.check((text) => {
      const ms = parseDuration(text)!;
      return ms >= parseDuration(min)! && ms <= parseDuration(max)!;
    }, `must be between ${min} and ${max}`),
  );
/** The bounds of each duration field (docs/configuration.md). */
export const DURATION_BOUNDS = {
  timeout: ['100ms', '10m'],
  refreshAfter: ['1s', '365d'],
  keyDuration: ['1m', '3650d'],
} as const;

export const cacheBackends = ['auto', 'keychain', 'file', 'none'] as const;
export type CacheBackendName = (typeof cacheBackends)[number];

const CacheSchema = v.strictObject({
  backend: v.optional(v.picklist(cacheBackends, `must be one of: ${cacheBackends.join(', ')}`)),
  refreshAfter: v.optional(duration(...DURATION_BOUNDS.refreshAfter)),
  /** What `auto` does where no keychain is usable: "none" (no cache, the default) or "file". */
  fallback: v.optional(v.picklist(['none', 'file'], 'must be "none" or "file"')),
});

/** The common part of a store; the rest is validated with the type's own schema (providers/<type>.schema.ts), see storeIssue. */
const StoreSchema = v.looseObject({
  type: v.picklist(storeTypes, `must be one of: ${storeTypes.join(', ')}`),
});

/** The gateway's key-management API that `admin rotate`/`revoke` mint and delete keys through. */
const keyIssuerTypes = ['litellm'] as const;
/** Variables that hold another tool's credential: a master key read from one would be that credential, sent to the gateway. */
const OTHER_CREDENTIAL_VARIABLES = /^(AWS_|GOOGLE_|AZURE_|ARM_|VAULT_|ANTHROPIC_|KEYBROKER_)|^(GITHUB_TOKEN|GH_TOKEN|NPM_TOKEN|CLAUDE_CODE_MESSAGING_TOKEN)$/i;
const KeyIssuerSchema = v.strictObject({
  type: v.picklist(keyIssuerTypes, `must be one of: ${keyIssuerTypes.join(', ')}`),
  url: v.pipe(v.string(), v.url('must be a URL such as "https://llm.example.com"')),
  /** The environment variable holding the admin credential (never the credential itself). */
  masterKeyEnv: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name such as "LITELLM_MASTER_KEY"'),
      v.check((name) => !OTHER_CREDENTIAL_VARIABLES.test(name), 'names another credential\'s variable (AWS_*, GOOGLE_*, AZURE_*, VAULT_*, ANTHROPIC_*, …): the gateway would receive that credential as its master key; use a variable of its own such as "LITELLM_MASTER_KEY"'),
    ),
  ),
  /** How long a minted key lives at the gateway ("90d"); absent: no expiry. */
  keyDuration: v.optional(duration(...DURATION_BOUNDS.keyDuration)),
  /** Models a minted key may call; absent: all. */
  models: v.optional(v.array(v.pipe(v.string(), v.minLength(1)))),
});

/** An HTTP header name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What a header value may hold (printable ASCII) and the one placeholder it may use. */
const headerValue = v.pipe(
  v.string(),
  v.regex(/^[\x20-\x7e]*$/, 'must be printable ASCII (no line breaks or control characters)'),
  v.check((text) => text.replace(/\{key\}/g, '').match(/[{}]/) === null, 'may use only the placeholder {key}'),
);
const headerMap = (what: string) =>
  v.pipe(
    v.record(v.pipe(v.string(), v.regex(HEADER_NAME, `must be ${what} header names (letters, digits, -)`)), headerValue),
    v.check((map) => Object.keys(map).length > 0, 'must name at least one header'),
  );

/** An MCP server keybroker may send a key to, and the profile that serves it (`keybroker headers`). */
const McpServerSchema = v.strictObject({
  url: v.pipe(v.string(), v.url('must be a URL such as "https://mcp.example.com/mcp"'), v.regex(/^https?:\/\//, 'must be an http(s) URL')),
  profile: v.optional(v.string()),
});

/** RFC 8693 token exchange: the access token is traded for one bound to the gateway's audience. */
const ExchangeSchema = v.strictObject({
  tokenEndpoint: v.pipe(v.string(), v.url('must be a URL such as "https://idp.example.com/oauth2/token"')),
  audience: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
});

/** A profile that serves short-lived access tokens from the company's identity provider (src/sso/). */
const OidcSchema = v.pipe(
  v.strictObject({
    issuer: v.pipe(v.string(), v.url('must be the issuer URL, such as "https://login.example.com"')),
    clientId: v.pipe(v.string(), v.minLength(1, 'must not be empty')),
    scopes: v.optional(v.array(v.pipe(v.string(), v.regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be scope names without spaces')))),
    /** The API the token is for, as the IdP names it: `audience` (Auth0, Okta custom servers) or an RFC 8707 `resource`. */
    audience: v.optional(v.pipe(v.string(), v.minLength(1, 'must not be empty'))),
    resource: v.optional(v.pipe(v.string(), v.url('must be an absolute URI (RFC 8707), such as "https://llm.example.com"'))),
    flow: v.optional(v.picklist(['device', 'browser'], 'must be "device" or "browser"')),
    /** The loopback port of the browser flow's redirect (the IdP's registered redirect URI); absent: any free port. */
    redirectPort: v.optional(v.pipe(v.number(), v.integer('must be a whole number'), v.minValue(1, 'must be a port number'), v.maxValue(65535, 'must be a port number'))),
    exchange: v.optional(ExchangeSchema),
  }),
  v.check((oidc) => !(oidc.audience && oidc.resource), 'has both "audience" and "resource": give the one your identity provider uses'),
);

/** Notes for people: config files are JSON, which has no comments (`keybroker config init` writes these). */
const comment = v.optional(v.union([v.string(), v.array(v.string())]));

const ProfileSchema = v.strictObject({
  $schema: v.optional(v.string()),
  $comment: comment,
  store: v.optional(StoreSchema),
  secret: v.optional(
    v.pipe(v.string(), v.minLength(1, 'must not be empty')),
  ),
  field: v.optional(v.pipe(v.string(), v.minLength(1, 'must not be empty'))),
  user: v.optional(v.picklist(['os', 'store'], 'must be "os" or "store"')),
  timeout: v.optional(duration(...DURATION_BOUNDS.timeout)),
  cache: v.optional(CacheSchema),
  gateway: v.optional(v.pipe(v.string(), v.url('must be a URL such as "https://llm.example.com"'))),
  keyIssuer: v.optional(KeyIssuerSchema),
  /** `keybroker headers`' JSON object (MCP headersHelper, otelHeadersHelper); values may use {key}. */
  headers: v.optional(headerMap('HTTP')),
  /** Static headers the LLM gateway needs on every request (tenant, routing): ANTHROPIC_CUSTOM_HEADERS, Desktop's helper output. */
  gatewayHeaders: v.optional(
    v.pipe(
      headerMap('HTTP'),
      v.check((map) => Object.values(map).every((value) => !value.includes('{key}')), 'must not contain {key} (the key travels in its own header)'),
    ),
  ),
  /** Lets this profile's store, gateway and key API be plain http:// to another host (a credential then crosses the network unencrypted). */
  allowInsecureHttp: v.optional(v.boolean('must be true or false')),
  oidc: v.optional(OidcSchema),
});

/** The whole file; exported for the docs check (test/cli/docs-check.test.ts). */
export const FileSchema = v.strictObject({
  $schema: v.optional(v.string()),
  $comment: comment,
  defaultProfile: v.optional(v.string()),
  profiles: v.optional(v.record(v.string(), ProfileSchema)),
  /** MCP servers (by name) that `keybroker headers` serves, each with its URL and profile. */
  mcpServers: v.optional(v.record(v.pipe(v.string(), v.minLength(1)), McpServerSchema)),
});

export type ConfigFile = v.InferOutput<typeof FileSchema>;
type ProfileLayer = v.InferOutput<typeof ProfileSchema>;

export const DEFAULTS = {
  field: 'api_key',
  user: 'os' as const,
  timeout: '5s',
  cache: { backend: 'auto' as CacheBackendName, refreshAfter: '30m', fallback: 'none' as const },
};

export interface Profile {
  name: string;
  /** Where the `store` section came from, for messages. */
  storeSource?: string;
  /** Absent for an `oidc` profile (it has one or the other): use storeOf() where a store is needed. */
  store?: StoreConfig;
  /** The secret's name template; for an `oidc` profile, its issuer (what its tokens come from). */
  secret: string;
  field: string;
  user: 'os' | 'store';
  timeoutMs: number;
  cache: { backend: CacheBackendName; refreshAfterMs: number; fallback: 'none' | 'file' };
  gateway?: string;
  /** Only admin commands read it. */
  keyIssuer?: KeyIssuerConfig;
  /** Header templates for `keybroker headers` ({key} is the key). */
  headers?: Record<string, string>;
  /** Static headers for the gateway beyond the key. */
  gatewayHeaders?: Record<string, string>;
  /** Plain http:// to another host was allowed by the profile (`"allowInsecureHttp": true`). */
  allowInsecureHttp?: boolean;
  /** Present for a profile that serves SSO access tokens instead of a stored key. */
  oidc?: OidcConfig;
}

export type OidcConfig = v.InferOutput<typeof OidcSchema>;

/** The profile's store, for the commands that need one; an `oidc` profile has none. */
export function storeOf(profile: Profile): StoreConfig {
  if (profile.store) return profile.store;
  throw new ConfigError(
    `profile "${profile.name}" serves SSO tokens from ${profile.oidc?.issuer ?? 'an identity provider'} and has no "store"`,
    'use a profile with a "store" section for this command (--profile NAME)',
  );
}

export type KeyIssuerConfig = v.InferOutput<typeof KeyIssuerSchema>;

/** One place a value can come from, in increasing precedence. */
export interface Layer {
  source: string;
  data: ConfigFile;
}

export interface LoadedConfig {
  layers: Layer[];
  profile: Profile;
  /** For `keybroker config`: dotted field path → the source that set it ("default" when none). */
  sources: Record<string, string>;
}

export interface ConfigRequest {
  env: NodeJS.ProcessEnv;
  configFlag?: string;
  profileFlag?: string;
}

export function loadConfig(request: ConfigRequest): LoadedConfig {
  const layers = readLayers(request);
  return resolveProfile(layers, request.profileFlag ?? request.env['KEYBROKER_PROFILE']);
}

function readLayers({ env, configFlag }: ConfigRequest): Layer[] {
  const layers: Layer[] = [];
  const machine = readConfigFile(machineConfigPath(env), false);
  if (machine) layers.push(machine);
  const userPath = configFlag ?? userConfigPath(env);
  const explicit = configFlag !== undefined || env['KEYBROKER_CONFIG'] !== undefined;
  const user = readConfigFile(userPath, explicit);
  if (user) layers.push(user);
  const fromEnv = environmentLayer(env);
  if (fromEnv) layers.push(fromEnv);
  return layers;
}

/** Reads and validates one file; undefined when it is absent and not required. */
function readConfigFile(file: string, required: boolean): Layer | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !required) return undefined;
    if (code === 'ENOENT') {
      throw new ConfigError(`config file ${file} does not exist`, 'create it (keybroker config init) or fix KEYBROKER_CONFIG/--config');
    }
    throw new ConfigError(`cannot read config file ${file} (${code})`, 'check its permissions');
  }
  return { source: file, data: parseConfigText(text, file) };
}

export function parseConfigText(text: string, source: string): ConfigFile {
  let json: unknown;
  try {
    // A UTF-8 byte order mark (Windows editors write one) is not part of the JSON.
    json = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (error) {
    throw new ConfigError(`${source} is not valid JSON (${(error as Error).message})`, 'fix the syntax');
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`${source} must hold a JSON object, not ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`, 'write {"profiles": {"default": {...}}} (keybroker config init writes a starting file)');
  }
  const result = v.safeParse(FileSchema, json);
  if (!result.success) {
    const issue = describeIssue(result.issues[0]);
    throw new ConfigError(`${source}: ${issue.what}`, issue.fix);
  }
  for (const [name, profile] of Object.entries(result.output.profiles ?? {})) {
    const issue = profile.store ? storeIssue(profile.store, ['profiles', name, 'store']) : undefined;
    if (issue) throw new ConfigError(`${source}: ${issue.what}`, issue.fix);
  }
  return result.output;
}

/** What is wrong with a `store` section by its type's own schema (providers/<type>.schema.ts), or undefined. */
export function storeIssue(store: { type: (typeof storeTypes)[number] }, at: string[]): { what: string; fix: string } | undefined {
  const result = v.safeParse(storeSchemas[store.type], store);
  return result.success ? undefined : describeIssue(result.issues[0], at);
}

/** What is wrong with a field, and what to do about it. */
export function describeIssue(issue: v.BaseIssue<unknown>, at: string[] = []): { what: string; fix: string } {
  const dotted = [...at, ...(issue.path ?? []).map((item) => String(item.key))];
  const where = dotted.length ? dotted.join('.') : '(top level)';
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.expected === 'Object') {
    return { what: `field "${where}" must be a JSON object, not ${issue.received}`, fix: 'correct that field' };
  }
  if (issue.kind === 'schema' && issue.type === 'strict_object' && issue.input !== undefined) {
    const path = [...dotted];
    const key = path.pop();
    return {
      what: `unknown field "${key}"${path.length ? ` in ${path.join('.')}` : ''}`,
      fix: 'remove it or correct its spelling (docs/configuration.md lists every field)',
    };
  }
  if (issue.input === undefined && issue.kind === 'schema') return { what: `field "${where}" is required`, fix: 'add it' };
  const message = issue.message.startsWith('Invalid') ? `is invalid (${issue.message})` : issue.message;
  return { what: `field "${where}" ${message}`, fix: 'correct that field' };
}

const ENV_FIELDS: Record<string, (layer: ProfileLayer, value: string) => void> = {
  KEYBROKER_SECRET: (layer, value) => void (layer.secret = value),
  KEYBROKER_FIELD: (layer, value) => void (layer.field = value),
  KEYBROKER_USER: (layer, value) => void (layer.user = value as 'os'),
  KEYBROKER_TIMEOUT: (layer, value) => void (layer.timeout = value),
  KEYBROKER_CACHE_BACKEND: (layer, value) => void ((layer.cache ??= {}).backend = value as CacheBackendName),
  KEYBROKER_REFRESH_AFTER: (layer, value) => void ((layer.cache ??= {}).refreshAfter = value),
};

/** KEYBROKER_* variables override fields of whichever profile is in use. */
function environmentLayer(env: NodeJS.ProcessEnv): Layer | undefined {
  const profile: ProfileLayer = {};
  const set: string[] = [];
  for (const [name, apply] of Object.entries(ENV_FIELDS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    apply(profile, value);
    set.push(name);
  }
  if (set.length === 0) return undefined;
  const source = `environment (${set.join(', ')})`;
  const data = { profiles: { '*': profile } };
  const result = v.safeParse(FileSchema, data);
  if (!result.success) {
    throw new ConfigError(`${source}: ${describeIssue(result.issues[0]).what.replace('profiles.*.', '')}`, 'correct or unset that variable');
  }
  return { source, data: result.output };
}

export type McpServerConfig = v.InferOutput<typeof McpServerSchema>;

/** Every layer's `mcpServers`, a later layer's entry replacing an earlier one of the same name. */
export function mcpServers(layers: Layer[]): Record<string, McpServerConfig & { source: string }> {
  const servers: Record<string, McpServerConfig & { source: string }> = {};
  for (const layer of layers) {
    for (const [name, server] of Object.entries(layer.data.mcpServers ?? {})) servers[name] = { ...server, source: layer.source };
  }
  return servers;
}

/** Every profile the layers define, in first-seen order (not the environment's wildcard `*`). */
export function profileNames(layers: Layer[]): string[] {
  return [...new Set(layers.flatMap((layer) => Object.keys(layer.data.profiles ?? {})))].filter((name) => name !== '*');
}

/** Merges the layers for one profile; `*` is the environment's wildcard profile. */
export function resolveProfile(layers: Layer[], requested: string | undefined): LoadedConfig {
  if (layers.every((layer) => !layer.data.profiles || Object.keys(layer.data.profiles).every((name) => name === '*'))) {
    throw new ConfigError(
      'no keybroker configuration found',
      'ask your admin for the machine-wide file, or create one with \'keybroker config init\' (keybroker config shows the paths searched)',
    );
  }
  const chosen = chooseProfileName(layers, requested);
  const name = chosen.name;
  const sources: Record<string, string> = { profile: chosen.source };

  const merged: ProfileLayer & { cache: NonNullable<ProfileLayer['cache']> } = { cache: {} };
  let found = false;
  for (const layer of layers) {
    for (const key of [name, '*']) {
      const part = layer.data.profiles?.[key];
      if (!part) continue;
      if (key === name) found = true;
      for (const [field, value] of Object.entries(part) as [keyof ProfileLayer, unknown][]) {
        if (value === undefined || field === '$comment' || field === '$schema') continue;
        if (field === 'cache') {
          for (const [cacheField, cacheValue] of Object.entries(value as object)) {
            if (cacheValue === undefined) continue;
            (merged.cache as Record<string, unknown>)[cacheField] = cacheValue;
            sources[`cache.${cacheField}`] = layer.source;
          }
        } else {
          (merged as Record<string, unknown>)[field] = value;
          sources[field] = layer.source;
        }
      }
    }
  }
  if (!found) {
    const known = profileNames(layers);
    throw new ConfigError(
      `profile "${name}" is not defined in ${layers.map((layer) => layer.source).join(' or ')}`,
      known.length ? `use one of: ${known.join(', ')} (--profile or KEYBROKER_PROFILE)` : 'define it under "profiles"',
    );
  }
  const where = `profile "${name}" (${layers.filter((l) => l.data.profiles?.[name]).map((l) => l.source).join(', ')})`;
  if (merged.store && merged.oidc) {
    throw new ConfigError(`${where}: has both "store" and "oidc"`, 'keep one: "store" for a stored key, "oidc" for SSO tokens');
  }
  if (!merged.store && !merged.oidc) throw new ConfigError(`${where}: field "store" is required`, 'add "store": {"type": "aws", ...} (or "oidc": {...} for SSO tokens)');
  if (merged.oidc && merged.secret) throw new ConfigError(`${where}: field "secret" is for a "store" profile, and this one has "oidc"`, 'remove "secret"');
  if (!merged.oidc && !merged.secret) throw new ConfigError(`${where}: field "secret" is required`, 'add "secret": "claude-code/keys/{user}"');
  const profile: Profile = {
    name,
    secret: merged.oidc ? merged.oidc.issuer : merged.secret!,
    field: merged.field ?? DEFAULTS.field,
    user: merged.user ?? DEFAULTS.user,
    timeoutMs: parseDuration(merged.timeout ?? DEFAULTS.timeout)!,
    cache: {
      backend: merged.cache.backend ?? DEFAULTS.cache.backend,
      refreshAfterMs: parseDuration(merged.cache.refreshAfter ?? DEFAULTS.cache.refreshAfter)!,
      fallback: merged.cache.fallback ?? DEFAULTS.cache.fallback,
    },
  };
  if (merged.gateway) profile.gateway = merged.gateway;
  if (merged.keyIssuer) profile.keyIssuer = merged.keyIssuer;
  if (merged.headers) profile.headers = merged.headers;
  if (merged.gatewayHeaders) profile.gatewayHeaders = merged.gatewayHeaders;
  if (merged.allowInsecureHttp) profile.allowInsecureHttp = true;
  if (merged.store) profile.store = merged.store as StoreConfig;
  if (merged.oidc) profile.oidc = merged.oidc;
  if (sources['store']) profile.storeSource = sources['store'];
  if (!profile.allowInsecureHttp) refusePlainHttp(profile, sources);
  return { layers, profile, sources };
}

/**
 * A store address, gateway or key API over plain http:// to another host would carry the store
 * token, the developer's key or the gateway's master key unencrypted: refused unless the profile
 * says "allowInsecureHttp": true. Loopback (an emulator, a local proxy) is fine.
 */
function refusePlainHttp(profile: Profile, sources: Record<string, string>): void {
  const addresses: { field: string; value: unknown; carries: string }[] = [
    ...Object.entries(profile.store ?? {}).map(([field, value]) => ({ field: `store.${field}`, value, carries: "the store's credentials and your key" })),
    { field: 'oidc.issuer', value: profile.oidc?.issuer, carries: 'your sign-in (refresh and access tokens)' },
    { field: 'oidc.exchange.tokenEndpoint', value: profile.oidc?.exchange?.tokenEndpoint, carries: 'your access token' },
    { field: 'gateway', value: profile.gateway, carries: 'your key' },
    { field: 'keyIssuer.url', value: profile.keyIssuer?.url, carries: "the gateway's master key" },
  ];
  for (const { field, value, carries } of addresses) {
    if (typeof value !== 'string' || !/^http:\/\//i.test(value) || !isPlainHttpToAnotherHost(value)) continue;
    const source = sources[field.split('.')[0]!] ?? 'the configuration';
    throw new ConfigError(
      `${source}: profile "${profile.name}": field "${field}" is plain http:// to ${new URL(value).host}, another machine: ${carries} would cross the network unencrypted`,
      `use its https:// address (or, only on a network you trust end to end, set "allowInsecureHttp": true in the profile)`,
    );
  }
}

function chooseProfileName(layers: Layer[], requested: string | undefined): { name: string; source: string } {
  if (requested) return { name: requested, source: '--profile or KEYBROKER_PROFILE' };
  let chosen = { name: 'default', source: 'default' };
  for (const layer of layers) {
    if (layer.data.defaultProfile) chosen = { name: layer.data.defaultProfile, source: layer.source };
  }
  return chosen;
}
