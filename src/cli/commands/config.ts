// `keybroker config` (the effective configuration and the source of each value) and
// `keybroker config init` (a commented starting file for one store).
import path from 'node:path';
import type { Command } from '../command.ts';
import { UsageError } from '../../kernel/errors.ts';
import { userConfigPath } from '../../kernel/paths.ts';
import { loadConfigFor } from '../wiring.ts';
import {
  checkStoreType,
  configFiles,
  effectiveConfig,
  formatEffective,
  initialConfig,
  STORE_QUESTIONS,
  writeInitialConfig,
  type InitAnswers,
} from '../../config/view.ts';
import { storeTypes } from '../../../providers/index.ts';

const STORE_FLAGS = ['region', 'endpoint', 'aws-profile', 'vault-url', 'project', 'address', 'mount', 'vault-auth'] as const;
const FLAG_FIELD: Record<(typeof STORE_FLAGS)[number], string> = {
  region: 'region',
  endpoint: 'endpoint',
  'aws-profile': 'profile',
  'vault-url': 'vaultUrl',
  project: 'project',
  address: 'address',
  mount: 'mount',
  'vault-auth': 'auth',
};

export const configCommand: Command = {
  name: 'config',
  summary: 'show the effective configuration and where each value came from; config init',
  help: `Usage: keybroker config [--profile NAME] [--json]
       keybroker config init --store aws|azure|gcp|vault [store flags] [--secret TEMPLATE]
                             [--gateway URL] [--fallback file|none] [--output FILE] [--force]

config       the profile in use, field by field, with the file or the one KEYBROKER_* variable
             that set each value ("default" when none did), the layers it overrode, "enforced
             by the machine-wide file" where that file binds it, and the files searched.
             Never a secret.
config init  writes a starting file for one store to your user config path (or --output).
             On a terminal it asks for what the flags do not give. JSON has no comments, so
             the explanations are "$comment" fields, which keybroker ignores.

Where this machine has no keychain (SSH, WSL, containers), init says so: on a terminal it offers
"fallback": "file" (the key cached in a private 0600 file); otherwise pass --fallback file.

Store flags: --region, --endpoint, --aws-profile (aws); --vault-url (azure); --project (gcp);
             --address, --mount, --vault-auth token|oidc|userpass|ldap (vault)

Examples:
  keybroker config
  keybroker config --profile eu --json
  keybroker config init                                   # asks, on a terminal
  keybroker config init --store aws --region eu-west-1 --gateway https://llm.example.com
  keybroker config init --store vault --address https://vault.example.com --output ./kb.json`,
  options: {
    json: { type: 'boolean' },
    store: { type: 'string' },
    secret: { type: 'string' },
    gateway: { type: 'string' },
    output: { type: 'string' },
    force: { type: 'boolean' },
    fallback: { type: 'string' },
    ...Object.fromEntries(STORE_FLAGS.map((flag) => [flag, { type: 'string' as const }])),
  },
  allowPositionals: true,
  async run(values, positionals, context) {
    if (positionals[0] === 'init' && positionals.length === 1) return init(values, context);
    if (positionals.length) throw new UsageError(`unknown config command "${positionals.join(' ')}"`, "run 'keybroker config --help'");
    const files = configFiles(context.env, typeof values['config'] === 'string' ? path.resolve(values['config']) : undefined);
    let config: ReturnType<typeof loadConfigFor>;
    try {
      config = loadConfigFor(values, context);
    } catch (error) {
      // The paths searched are what someone with a broken or missing configuration needs first.
      if (!values['json']) context.output.stdout(formatEffective([], files));
      throw error;
    }
    const rows = effectiveConfig(config);
    if (values['json']) {
      context.output.stdout(
        JSON.stringify({ profile: config.profile.name, values: rows, files, layers: config.layers.map((layer) => layer.source) }, null, 2) +
          '\n',
      );
    } else {
      context.output.stdout(formatEffective(rows, files));
    }
    return 0;
  },
};

async function init(values: Record<string, unknown>, context: Parameters<Command['run']>[2]): Promise<number> {
  const interactive = context.isTTY && Boolean(process.stdin.isTTY);
  // Loaded only here: no other command needs a line editor.
  const prompt = interactive
    ? (await import('node:readline/promises')).createInterface({ input: process.stdin, output: process.stderr })
    : undefined;
  const ask = async (question: string, fallback?: string) => {
    if (!prompt) return fallback ?? '';
    const answer = (await prompt.question(`${question}${fallback ? ` [${fallback}]` : ''}: `)).trim();
    return answer || fallback || '';
  };
  try {
    const storeFlag =
      typeof values['store'] === 'string' ? values['store'] : prompt ? await ask(`store (${storeTypes.join(', ')})`, 'aws') : undefined;
    const store = checkStoreType(storeFlag);
    const fields: Record<string, string> = {};
    for (const flag of STORE_FLAGS) if (typeof values[flag] === 'string') fields[FLAG_FIELD[flag]] = values[flag] as string;
    for (const question of STORE_QUESTIONS[store]) {
      if (fields[question.field]) continue;
      const answer = await ask(question.prompt);
      if (answer) fields[question.field] = answer;
      else if (question.required)
        throw new UsageError(
          `config init: the ${store} store needs ${question.field}`,
          `pass --${Object.entries(FLAG_FIELD).find(([, field]) => field === question.field)?.[0]} VALUE`,
        );
    }
    const secret =
      typeof values['secret'] === 'string'
        ? values['secret']
        : (await ask('secret name template', 'claude-code/keys/{user}')) || 'claude-code/keys/{user}';
    const gateway = typeof values['gateway'] === 'string' ? values['gateway'] : await ask('LLM gateway URL (empty: none)');
    const fallback = await initFallback(values['fallback'], context, prompt ? ask : undefined);
    const answers: InitAnswers = { store, fields, secret, ...(gateway ? { gateway } : {}), ...(fallback ? { fallback } : {}) };
    const file =
      typeof values['output'] === 'string'
        ? path.resolve(values['output'])
        : typeof values['config'] === 'string'
          ? path.resolve(values['config'])
          : userConfigPath(context.env);
    writeInitialConfig(file, initialConfig(answers), values['force'] === true);
    context.output.stdout(`wrote ${file}\n`);
    context.output.stderr(`keybroker: next: 'keybroker config' to review it, 'keybroker login', then 'keybroker doctor'`);
    return 0;
  } finally {
    prompt?.close();
  }
}

/** `--fallback`, or on a machine without a keychain the question (on a terminal) or a note that names the flag. */
async function initFallback(
  flag: unknown,
  context: Parameters<Command['run']>[2],
  ask?: (question: string, fallback?: string) => Promise<string>,
): Promise<'file' | 'none' | undefined> {
  if (flag !== undefined && flag !== 'file' && flag !== 'none')
    throw new UsageError(`--fallback must be file or none, not "${String(flag)}"`, 'e.g. --fallback file on a machine without a keychain');
  if (flag !== undefined) return flag;
  const { missingKeychain } = await import('../../cache/keychain-probe.ts');
  const missing = await missingKeychain(context.env);
  if (missing === undefined) return undefined;
  context.output.stderr(
    `keybroker: no keychain on this machine (${missing}): without a fallback nothing is cached and every call reads the store`,
  );
  if (!ask) {
    context.output.stderr(
      'keybroker: to cache the key in a private file (0600, in a 0700 folder) instead, run config init again with --fallback file, or add "fallback": "file" to "cache"',
    );
    return undefined;
  }
  const answer = (await ask('cache the key in a private file (0600) instead? (yes/no)', 'yes')).toLowerCase();
  return answer.startsWith('y') ? 'file' : 'none';
}
