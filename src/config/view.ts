// `keybroker config`: the effective profile with where each value came from, and `config init`:
// a starting file for one store, with its explanations in "$comment" fields (JSON has no comments).
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULTS, parseConfigText, type LoadedConfig } from './config.ts';
import { formatDuration } from '../kernel/duration.ts';
import { machineConfigPath, userConfigPath } from '../kernel/paths.ts';
import { UsageError } from '../kernel/errors.ts';
import { storeTypes, type StoreType } from '../../providers/index.ts';

export interface EffectiveValue {
  field: string;
  value: unknown;
  /** The layer that won: a file, the one KEYBROKER_* variable that set it, or "default". */
  source: string;
  /** Why it won: "enforced" (the machine-wide file binds it) or "latest" (the highest-precedence layer setting it). */
  why: 'enforced' | 'latest' | 'default';
  /** The layers that set it too and lost, lowest precedence first. */
  overrides: string[];
}

const SECRET_FIELD = /secret|token|password|credential/i;

export function effectiveConfig(config: LoadedConfig): EffectiveValue[] {
  const { profile, sources, overridden, enforced } = config;
  const row = (field: string, value: unknown, from: string = field): EffectiveValue => {
    const source = sources[from] ?? 'default';
    const why = source === 'default' ? 'default' : enforced.includes(from.split('.')[0]!) ? 'enforced' : 'latest';
    return { field, value, source, why, overrides: overridden[from] ?? [] };
  };
  const rows: EffectiveValue[] = [row('profile', profile.name)];
  for (const [name, value] of Object.entries(profile.store ?? {})) {
    // Store sections may carry credentials for some auth methods (Vault approle): never shown.
    rows.push(row(`store.${name}`, SECRET_FIELD.test(name) && name !== 'type' ? '‹hidden›' : value, 'store'));
  }
  for (const [name, value] of Object.entries(profile.oidc ?? {})) rows.push(row(`oidc.${name}`, value, 'oidc'));
  rows.push(
    row('secret', profile.secret, profile.oidc ? 'oidc' : 'secret'),
    row('field', profile.field),
    row('user', profile.user),
    row('timeout', formatDuration(profile.timeoutMs)),
    row('cache.backend', profile.cache.backend),
    row('cache.refreshAfter', formatDuration(profile.cache.refreshAfterMs)),
    row('cache.fallback', profile.cache.fallback),
  );
  if (profile.gateway) rows.push(row('gateway', profile.gateway));
  // Shown whenever set: it lets a credential cross the network unencrypted.
  if (profile.allowInsecureHttp) rows.push(row('allowInsecureHttp', true));
  return rows;
}

/** "(source)", with why it won: enforced by the machine-wide file, or over the layers it overrode. */
function describeSource(row: EffectiveValue): string {
  if (row.why === 'enforced') return `(${row.source}; enforced by the machine-wide file)`;
  return row.overrides.length ? `(${row.source}; over ${row.overrides.join(', ')})` : `(${row.source})`;
}

export function configFiles(env: NodeJS.ProcessEnv, configFlag?: string): { role: string; path: string; exists: boolean }[] {
  return [
    { role: 'machine-wide', path: machineConfigPath(env) },
    { role: 'user', path: configFlag ?? userConfigPath(env) },
  ].map((file) => ({ ...file, exists: fs.existsSync(file.path) }));
}

export function formatEffective(rows: EffectiveValue[], files: ReturnType<typeof configFiles>): string {
  const width = Math.max(0, ...rows.map((row) => row.field.length));
  const valueWidth = Math.min(48, Math.max(0, ...rows.map((row) => JSON.stringify(row.value).length)));
  const lines = rows.map((row) => `${row.field.padEnd(width)}  ${JSON.stringify(row.value).padEnd(valueWidth)}  ${describeSource(row)}`);
  if (lines.length) lines.push('');
  lines.push('files (lowest precedence first; then KEYBROKER_* variables, then flags):');
  for (const file of files) lines.push(`  ${file.role.padEnd(12)}  ${file.path}${file.exists ? '' : '  (absent)'}`);
  return `${lines.join('\n')}\n`;
}

export interface InitAnswers {
  store: StoreType;
  /** Store fields (region, endpoint, vaultUrl, project, address, mount). */
  fields: Record<string, string>;
  secret: string;
  gateway?: string;
  /** What `auto` does without a keychain: "file" when the machine has none and the admin agreed. */
  fallback?: 'file' | 'none';
}

/** The questions `config init` asks per store type: field, prompt, required. */
export const STORE_QUESTIONS: Record<StoreType, { field: string; prompt: string; required: boolean; comment: string }[]> = {
  aws: [
    { field: 'region', prompt: 'AWS region (e.g. us-east-1)', required: true, comment: 'store.region: the AWS region of Secrets Manager' },
    {
      field: 'profile',
      prompt: 'AWS named profile (empty: the default credential chain)',
      required: false,
      comment: 'store.profile: a profile of ~/.aws/config (SSO); absent = AWS_PROFILE or the default chain',
    },
    {
      field: 'endpoint',
      prompt: 'Secrets Manager endpoint (empty: the public one)',
      required: false,
      comment: 'store.endpoint: only for a VPC endpoint or an emulator',
    },
  ],
  azure: [
    {
      field: 'vaultUrl',
      prompt: 'Key Vault URL (e.g. https://myvault.vault.azure.net)',
      required: true,
      comment: 'store.vaultUrl: your Key Vault; you sign in with `az login`',
    },
  ],
  gcp: [
    {
      field: 'project',
      prompt: 'GCP project id',
      required: true,
      comment: 'store.project: the project holding the secrets; you sign in with `gcloud auth application-default login`',
    },
  ],
  vault: [
    {
      field: 'address',
      prompt: 'Vault address (e.g. https://vault.example.com)',
      required: true,
      comment: 'store.address: your Vault (or OpenBao) server; a token comes from VAULT_TOKEN or ~/.vault-token, or `keybroker login`',
    },
    {
      field: 'mount',
      prompt: 'KV v2 mount (empty: secret)',
      required: false,
      comment: 'store.mount: the KV version 2 secrets engine the keys live in',
    },
    {
      field: 'auth',
      prompt: 'login method: token, oidc, userpass or ldap (empty: token)',
      required: false,
      comment:
        'store.auth.method: token (VAULT_TOKEN or ~/.vault-token), oidc (browser, via keybroker login), userpass, ldap; approle and jwt need more fields',
    },
  ],
};

const VAULT_INIT_METHODS = ['token', 'oidc', 'userpass', 'ldap'];

export function initialConfig(answers: InitAnswers): string {
  const store: Record<string, unknown> = { type: answers.store };
  for (const question of STORE_QUESTIONS[answers.store]) {
    const value = answers.fields[question.field];
    if (!value) continue;
    if (question.field === 'auth') {
      if (!VAULT_INIT_METHODS.includes(value))
        throw new UsageError(
          `config init: login method "${value}" is not one of ${VAULT_INIT_METHODS.join(', ')}`,
          'pick one of those, and add approle or jwt by hand',
        );
      store['auth'] = { method: value };
    } else store[question.field] = value;
  }
  const profile: Record<string, unknown> = {
    $comment: [
      `keybroker profile for ${answers.store}. JSON has no comments: these "$comment" lines are ignored.`,
      ...STORE_QUESTIONS[answers.store].map((question) => question.comment),
      'secret: where your key is; {user} becomes your OS login name ("user": "os") or your identity in the store ("user": "store")',
      `field: the JSON field holding the key when the secret is a JSON object (default "${DEFAULTS.field}")`,
      `cache.backend: auto (OS keychain; where there is none, see cache.fallback), keychain, file or none; cache.refreshAfter: how long a cached key is used before the store is asked again (default ${DEFAULTS.cache.refreshAfter})`,
      'gateway: the LLM gateway Claude Code uses (keybroker setup puts it into ANTHROPIC_BASE_URL)',
      'check it with: keybroker config, then keybroker doctor',
    ],
    store,
    secret: answers.secret,
    field: DEFAULTS.field,
    user: DEFAULTS.user,
    cache: {
      backend: DEFAULTS.cache.backend,
      ...(answers.fallback ? { fallback: answers.fallback } : {}),
      refreshAfter: DEFAULTS.cache.refreshAfter,
    },
  };
  if (answers.gateway) profile['gateway'] = answers.gateway;
  const file = {
    $comment:
      'keybroker configuration (keybroker config init). Profiles are picked with --profile or KEYBROKER_PROFILE; see keybroker config --help.',
    defaultProfile: 'default',
    profiles: { default: profile },
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

export function writeInitialConfig(file: string, text: string, force: boolean): void {
  parseConfigText(text, file); // what we write must load
  if (fs.existsSync(file) && !force)
    throw new UsageError(`${file} already exists; not overwriting it`, 'pass --force to replace it, or --output FILE to write elsewhere');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o600 });
}

export function checkStoreType(value: string | undefined): StoreType {
  if (value && (storeTypes as readonly string[]).includes(value)) return value as StoreType;
  // A flag (or its prompt) was missing or wrong: a usage error (exit 2), as for the store's own flags.
  throw new UsageError(
    value ? `config init: unknown store type "${value}"` : 'config init: no store type given',
    `pass --store ${storeTypes.join('|')}`,
  );
}
