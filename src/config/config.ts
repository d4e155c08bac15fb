// Part src/config/: configuration: files, layers, validation, the effective view. May use: kernel, providers.
// Configuration: JSON files in layers (machine-wide < user < environment < flags), validated
// with messages that name the file, the field and what is wrong.
import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import * as v from 'valibot';
import { ConfigError } from '../kernel/errors.ts';
import { parseDuration } from '../kernel/duration.ts';
import { machineConfigPath, userConfigPath } from '../kernel/paths.ts';
import { isPlainHttpToAnotherHost } from '../kernel/transport.ts';
import { readTrustRoot, UnsafeFile } from '../kernel/private-file.ts';
import { machineConfigAclProblem, powershellSddl, type SddlReader } from '../kernel/windows-acl.ts';
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
const DURATION_BOUNDS = {
  timeout: ['100ms', '10m'],
  refreshAfter: ['1s', '365d'],
  keyDuration: ['1m', '3650d'],
} as const;

const cacheBackends = ['auto', 'keychain', 'file', 'none'] as const;
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
const OTHER_CREDENTIAL_VARIABLES =
  /^(AWS_|GOOGLE_|AZURE_|ARM_|VAULT_|ANTHROPIC_|KEYBROKER_)|^(GITHUB_TOKEN|GH_TOKEN|NPM_TOKEN|CLAUDE_CODE_MESSAGING_TOKEN)$/i;
const KeyIssuerSchema = v.strictObject({
  type: v.picklist(keyIssuerTypes, `must be one of: ${keyIssuerTypes.join(', ')}`),
  url: v.pipe(v.string(), v.url('must be a URL such as "https://llm.example.com"')),
  /** The environment variable holding the admin credential (never the credential itself). */
  masterKeyEnv: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name such as "LITELLM_MASTER_KEY"'),
      v.check(
        (name) => !OTHER_CREDENTIAL_VARIABLES.test(name),
        'names another credential\'s variable (AWS_*, GOOGLE_*, AZURE_*, VAULT_*, ANTHROPIC_*, …): the gateway would receive that credential as its master key; use a variable of its own such as "LITELLM_MASTER_KEY"',
      ),
    ),
  ),
  /** How long a minted key lives at the gateway ("90d"); absent: no expiry. */
  keyDuration: v.optional(duration(...DURATION_BOUNDS.keyDuration)),
  /** Models a minted key may call; absent: all. */
  models: v.optional(v.array(v.pipe(v.string(), v.minLength(1)))),
});

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
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
    redirectPort: v.optional(
      v.pipe(
        v.number(),
        v.integer('must be a whole number'),
        v.minValue(1, 'must be a port number'),
        v.maxValue(65535, 'must be a port number'),
      ),
    ),
    exchange: v.optional(ExchangeSchema),
  }),
  v.check((oidc) => !(oidc.audience && oidc.resource), 'has both "audience" and "resource": give the one your identity provider uses'),
);

/** The profile fields a machine-wide file can enforce: no user file, KEYBROKER_* variable or flag may set them otherwise. */
const ENFORCEABLE_FIELDS = [
  'store',
  'secret',
  'field',
  'user',
  'timeout',
  'cache',
  'gateway',
  'keyIssuer',
  'headers',
  'gatewayHeaders',
  'allowInsecureHttp',
  'oidc',
] as const;
const enforceList = <const T extends readonly string[]>(names: T) =>
  v.optional(v.array(v.picklist(names, `must list field names among: ${names.join(', ')}`)));

/** Notes for people: config files are JSON, which has no comments (`keybroker config init` writes these). */
const comment = v.optional(v.union([v.string(), v.array(v.string())]));

const ProfileSchema = v.strictObject({
  $schema: v.optional(v.string()),
  $comment: comment,
  store: v.optional(StoreSchema),
  secret: v.optional(v.pipe(v.string(), v.minLength(1, 'must not be empty'))),
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
      v.check(
        (map) => Object.values(map).every((value) => !value.includes('{key}')),
        'must not contain {key} (the key travels in its own header)',
      ),
    ),
  ),
  /** Lets this profile's store, gateway and key API be plain http:// to another host (a credential then crosses the network unencrypted). */
  allowInsecureHttp: v.optional(v.boolean('must be true or false')),
  oidc: v.optional(OidcSchema),
  /** Machine-wide file only: this profile's fields that no other layer may set otherwise. */
  enforce: enforceList(ENFORCEABLE_FIELDS),
});

/** The whole file; exported for the docs check (test/cli/docs-check.test.ts). */
export const FileSchema = v.strictObject({
  $schema: v.optional(v.string()),
  $comment: comment,
  defaultProfile: v.optional(v.string()),
  profiles: v.optional(v.record(v.string(), ProfileSchema)),
  /** MCP servers (by name) that `keybroker headers` serves, each with its URL and profile. */
  mcpServers: v.optional(v.record(v.pipe(v.string(), v.minLength(1)), McpServerSchema)),
  /** Machine-wide file only: fields of every profile (and "mcpServers") that no other layer may set otherwise. */
  enforce: enforceList([...ENFORCEABLE_FIELDS, 'mcpServers'] as const),
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
/** machine: the admins' file; user: the user's file at its usual path; explicit: named by KEYBROKER_CONFIG or --config; environment: KEYBROKER_* variables. */
type LayerRole = 'machine' | 'user' | 'explicit' | 'environment';

export interface Layer {
  source: string;
  role: LayerRole;
  data: ConfigFile;
  /** Field (dotted) → what set it, where one layer holds several sources (each KEYBROKER_* variable). */
  fieldSources?: Record<string, string>;
}

export interface LoadedConfig {
  layers: Layer[];
  profile: Profile;
  /** For `keybroker config`: dotted field path → the source that set it ("default" when none). */
  sources: Record<string, string>;
  /** Dotted field path → the sources it was set in before the one that won, lowest first. */
  overridden: Record<string, string[]>;
  /** The profile's fields the machine-wide file enforces. */
  enforced: string[];
}

export interface ConfigRequest {
  env: NodeJS.ProcessEnv;
  configFlag?: string;
  profileFlag?: string;
  /** The OS's machine-wide path (tests give another: /etc is shared by every test). */
  osMachineConfig?: string;
}

export function loadConfig(request: ConfigRequest): LoadedConfig {
  const layers = readLayers(request);
  return resolveProfile(layers, request.profileFlag ?? request.env['KEYBROKER_PROFILE']);
}

function readLayers({ env, configFlag, osMachineConfig }: ConfigRequest): Layer[] {
  const layers: Layer[] = [];
  const osPath = osMachineConfig ?? machineConfigPath(UNMOVED);
  const machine = readConfigFile(machineFileOf(env, osPath), false, 'machine');
  if (machine) layers.push(machine);
  const userPath = configFlag ?? userConfigPath(env);
  const explicit = configFlag !== undefined || userConfigPath(env) !== userConfigPath({ ...env, KEYBROKER_CONFIG: undefined });
  const user = readConfigFile(userPath, explicit, explicit ? 'explicit' : 'user');
  if (user) layers.push(user);
  const fromEnv = environmentLayer(env);
  if (fromEnv) layers.push(fromEnv);
  return layers;
}

/** No variable that moves the machine-wide file: its OS path (Windows: C:\ProgramData). */
const UNMOVED: NodeJS.ProcessEnv = {};

/**
 * The machine-wide file: a variable (KEYBROKER_MACHINE_CONFIG; ProgramData on Windows) moves it
 * only where no file exists at the OS path; else a variable would shed what the admins' file enforces.
 */
function machineFileOf(env: NodeJS.ProcessEnv, osPath: string): string {
  const moved = machineConfigPath(env);
  if (moved === machineConfigPath(UNMOVED)) return osPath;
  if (moved !== osPath && fs.existsSync(osPath)) {
    const variable =
      machineConfigPath({ ...env, KEYBROKER_MACHINE_CONFIG: undefined }) === moved ? 'ProgramData' : 'KEYBROKER_MACHINE_CONFIG';
    throw new ConfigError(
      `${variable} moves the machine-wide file to ${moved}, but the admins' file ${osPath} exists: a variable cannot replace it`,
      `unset ${variable}`,
    );
  }
  return moved;
}

/** Reads and validates one file; undefined when it is absent and not required. */
function readConfigFile(file: string, required: boolean, role: LayerRole): Layer | undefined {
  let text: string | undefined;
  try {
    text = readTrustRoot(file);
    if (text !== undefined && role === 'machine' && process.platform === 'win32') refuseUnadministered(file);
  } catch (error) {
    if (error instanceof UnsafeFile) throw untrustedConfig(file, error);
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `cannot read config file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      'check its permissions',
    );
  }
  if (text === undefined && !required) return undefined;
  if (text === undefined) {
    throw new ConfigError(`config file ${file} does not exist`, 'create it (keybroker config init) or fix KEYBROKER_CONFIG/--config');
  }
  const data = parseConfigText(text, file);
  if (role !== 'machine' && (data.enforce || Object.values(data.profiles ?? {}).some((profile) => profile.enforce))) {
    throw new ConfigError(
      `${file}: field "enforce" is for the machine-wide file only`,
      "remove it (only the admins' file can enforce fields)",
    );
  }
  return { source: file, role, data };
}

/** A config file (or a folder above it) that someone else could have written: it would choose where the developer's credentials go. */
function untrustedConfig(file: string, unsafe: UnsafeFile): ConfigError {
  const folder = unsafe.file !== file;
  const what = folder ? `config file ${file} is in ${unsafe.file}, which ${unsafe.problem}` : `config file ${file} ${unsafe.problem}`;
  if (/written by other users/.test(unsafe.problem)) {
    return new ConfigError(
      `${what}: not used (whoever can write it chooses where your credentials go)`,
      `run 'chmod go-w ${unsafe.file}'${folder ? ' (or make the folder sticky: chmod +t)' : ''}`,
    );
  }
  if (/another user/.test(unsafe.problem)) {
    return new ConfigError(
      `${what}: not used (its owner chooses where your credentials go)`,
      `make it yours or root's (chown), or remove it`,
    );
  }
  return new ConfigError(`${what}: not used`, 'replace it with a regular JSON file');
}

/** Windows: a machine file counts only when Administrators or SYSTEM own it and its folder, and no one else can write them. */
function refuseUnadministered(file: string, read: SddlReader = powershellSddl): void {
  const problem = machineConfigAclProblem(path.win32.dirname(file), file, read);
  if (problem) {
    throw new ConfigError(
      `the machine-wide config ${problem.path} ${problem.problem}: not used (a standard user can create folders in ProgramData)`,
      'ask your admin to reinstall it owned by Administrators, writable by Administrators and SYSTEM only',
    );
  }
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
    throw new ConfigError(
      `${source} must hold a JSON object, not ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`,
      'write {"profiles": {"default": {...}}} (keybroker config init writes a starting file)',
    );
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
function storeIssue(store: { type: (typeof storeTypes)[number] }, at: string[]): { what: string; fix: string } | undefined {
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

/** Each KEYBROKER_* variable and the profile field it sets (dotted); the schema judges the value after. */
const ENV_FIELDS: Record<string, string> = {
  KEYBROKER_SECRET: 'secret',
  KEYBROKER_FIELD: 'field',
  KEYBROKER_USER: 'user',
  KEYBROKER_TIMEOUT: 'timeout',
  KEYBROKER_CACHE_BACKEND: 'cache.backend',
  KEYBROKER_REFRESH_AFTER: 'cache.refreshAfter',
};

/** Sets `field` ("cache.backend") in a layer being built, making the objects on the way. */
function setDotted(layer: Record<string, unknown>, field: string, value: string): void {
  const names = field.split('.');
  const last = names.pop() as string;
  let target = layer;
  for (const name of names) {
    target[name] ??= {};
    target = target[name] as Record<string, unknown>;
  }
  target[last] = value;
}

/** KEYBROKER_* variables override fields of whichever profile is in use; each field names the variable that set it. */
function environmentLayer(env: NodeJS.ProcessEnv): Layer | undefined {
  const profile: Record<string, unknown> = {};
  const fieldSources: Record<string, string> = {};
  for (const [name, field] of Object.entries(ENV_FIELDS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setDotted(profile, field, value);
    fieldSources[field] = name;
  }
  const set = Object.values(fieldSources);
  if (set.length === 0) return undefined;
  const source = `environment (${set.join(', ')})`;
  const data = { profiles: { '*': profile } };
  const result = v.safeParse(FileSchema, data);
  if (!result.success) {
    throw new ConfigError(
      `${source}: ${describeIssue(result.issues[0]).what.replace('profiles.*.', '')}`,
      'correct or unset that variable',
    );
  }
  return { source, role: 'environment', data: result.output, fieldSources };
}

export type McpServerConfig = v.InferOutput<typeof McpServerSchema>;

/**
 * The MCP servers keybroker may send a key to: the machine-wide file's and the user file's
 * entries (a later one replacing an earlier one of the same name), only the machine's when it
 * enforces "mcpServers", and none from a file `inProject` says lies in the project Claude Code
 * runs in (a cloned repository would list its own server).
 */
export function mcpServers(
  layers: Layer[],
  inProject: (file: string) => boolean = () => false,
): Record<string, McpServerConfig & { source: string }> {
  const machineOnly = layers.some((layer) => layer.role === 'machine' && layer.data.enforce?.includes('mcpServers'));
  const servers: Record<string, McpServerConfig & { source: string }> = {};
  for (const layer of layers) {
    if (layer.role === 'environment' || (machineOnly && layer.role !== 'machine') || !layer.data.mcpServers || inProject(layer.source))
      continue;
    for (const [name, server] of Object.entries(layer.data.mcpServers)) servers[name] = { ...server, source: layer.source };
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
      "ask your admin for the machine-wide file, or create one with 'keybroker config init' (keybroker config shows the paths searched)",
    );
  }
  const chosen = chooseProfileName(layers, requested);
  const name = chosen.name;
  const { merged, sources, overridden, enforced, found } = mergeLayers(layers, name);
  sources['profile'] = chosen.source;
  if (!found) {
    const known = profileNames(layers);
    throw new ConfigError(
      `profile "${name}" is not defined in ${layers.map((layer) => layer.source).join(' or ')}`,
      known.length ? `use one of: ${known.join(', ')} (--profile or KEYBROKER_PROFILE)` : 'define it under "profiles"',
    );
  }
  const where = `profile "${name}" (${layers
    .filter((l) => l.data.profiles?.[name])
    .map((l) => l.source)
    .join(', ')})`;
  if (merged.store && merged.oidc) {
    throw new ConfigError(`${where}: has both "store" and "oidc"`, 'keep one: "store" for a stored key, "oidc" for SSO tokens');
  }
  if (!merged.store && !merged.oidc)
    throw new ConfigError(`${where}: field "store" is required`, 'add "store": {"type": "aws", ...} (or "oidc": {...} for SSO tokens)');
  if (merged.oidc && merged.secret)
    throw new ConfigError(`${where}: field "secret" is for a "store" profile, and this one has "oidc"`, 'remove "secret"');
  if (!merged.oidc && !merged.secret)
    throw new ConfigError(`${where}: field "secret" is required`, 'add "secret": "claude-code/keys/{user}"');
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
  return { layers, profile, sources, overridden, enforced };
}

/**
 * A store address, gateway or key API over plain http:// to another host would carry the store
 * token, the developer's key or the gateway's master key unencrypted: refused unless the profile
 * says "allowInsecureHttp": true. Loopback (an emulator, a local proxy) is fine.
 */
function refusePlainHttp(profile: Profile, sources: Record<string, string>): void {
  const addresses: { field: string; value: unknown; carries: string }[] = [
    ...Object.entries(profile.store ?? {}).map(([field, value]) => ({
      field: `store.${field}`,
      value,
      carries: "the store's credentials and your key",
    })),
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

type MergedProfile = ProfileLayer & { cache: NonNullable<ProfileLayer['cache']> };

/** The machine layer's enforced fields for profile `name`: its top-level list and the profile's own. */
function enforcedFields(layers: Layer[], name: string): { machine: Layer | undefined; fields: Set<string> } {
  const machine = layers.find((layer) => layer.role === 'machine');
  const fields = new Set<string>([...(machine?.data.enforce ?? []), ...(machine?.data.profiles?.[name]?.enforce ?? [])]);
  fields.delete('mcpServers');
  return { machine, fields };
}

/** Merges the layers for profile `name` (and the `*` wildcard), noting who set each field and whom it overrode. */
function mergeLayers(layers: Layer[], name: string) {
  const merged: MergedProfile = { cache: {} };
  const sources: Record<string, string> = {};
  const overridden: Record<string, string[]> = {};
  const { machine, fields: enforced } = enforcedFields(layers, name);
  const set = (target: Record<string, unknown>, key: string, dotted: string, value: unknown, layer: Layer) => {
    if (sources[dotted]) overridden[dotted] = [...(overridden[dotted] ?? []), sources[dotted]];
    target[key] = value;
    sources[dotted] = layer.fieldSources?.[dotted] ?? layer.source;
  };
  let found = false;
  for (const layer of layers) {
    for (const key of [name, '*']) {
      const part = layer.data.profiles?.[key];
      if (!part) continue;
      if (key === name) found = true;
      for (const [field, value] of Object.entries(part) as [keyof ProfileLayer, unknown][]) {
        if (value === undefined || field === '$comment' || field === '$schema' || field === 'enforce') continue;
        if (enforced.has(field) && layer !== machine) refuseOverride(name, field, value, machine!, layer);
        if (field !== 'cache') set(merged as Record<string, unknown>, field, field, value, layer);
        else
          for (const [sub, subValue] of Object.entries(value as object))
            if (subValue !== undefined) set(merged.cache, sub, `cache.${sub}`, subValue, layer);
      }
    }
  }
  return { merged, sources, overridden, enforced: [...enforced], found };
}

/**
 * A field the machine-wide file enforces, set by another layer: an error (fail closed) unless it
 * is the same value. Ignoring it would hand the developer a store or secret other than the one
 * they asked for, silently.
 */
function refuseOverride(name: string, field: string, value: unknown, machine: Layer, layer: Layer): void {
  if (isDeepStrictEqual(value, machine.data.profiles?.[name]?.[field as keyof ProfileLayer])) return;
  const variables = Object.entries(layer.fieldSources ?? {})
    .filter(([dotted]) => dotted === field || dotted.startsWith(`${field}.`))
    .map(([, variable]) => variable);
  const by = variables.length ? variables.join(', ') : layer.source;
  throw new ConfigError(
    `profile "${name}": field "${field}" is enforced by the machine-wide file ${machine.source}, and ${by} sets it otherwise`,
    variables.length
      ? `unset ${variables.join(' ')}`
      : `remove "${field}" from profile "${name}" in ${layer.source} (ask your admin to change ${machine.source})`,
  );
}

/** A flag that would set a field the machine-wide file enforces to another value: refused, as a file or variable would be. */
export function refuseEnforcedFlag(config: LoadedConfig, field: 'gateway', flag: string, value: string | undefined): void {
  if (value === undefined || !config.enforced.includes(field) || value === config.profile[field]) return;
  throw new ConfigError(
    `profile "${config.profile.name}": field "${field}" is enforced by the machine-wide file ${config.layers.find((layer) => layer.role === 'machine')?.source}, and ${flag} ${value} sets it otherwise`,
    `drop ${flag}`,
  );
}

function chooseProfileName(layers: Layer[], requested: string | undefined): { name: string; source: string } {
  if (requested) return { name: requested, source: '--profile or KEYBROKER_PROFILE' };
  let chosen = { name: 'default', source: 'default' };
  for (const layer of layers) {
    if (layer.data.defaultProfile) chosen = { name: layer.data.defaultProfile, source: layer.source };
  }
  return chosen;
}
