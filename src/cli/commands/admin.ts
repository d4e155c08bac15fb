// `keybroker admin <put|import|rotate|revoke|list|policy>`: binds flags; the logic is in src/admin/.
import fs from 'node:fs';
import path from 'node:path';
import type { Command, ParsedValues, RunContext } from '../command.ts';
import { parseDuration } from '../../kernel/duration.ts';
import { UsageError } from '../../kernel/errors.ts';
import { storeTypes, type StoreType } from '../../../providers/index.ts';
import { storeOf, type LoadedConfig } from '../../config/config.ts';
import { userSourceMismatch } from '../../secret/user-source.ts';
import { parseExpiry, readKeyInput, refuseKeysInArguments, type AdminDeps } from '../../admin/common.ts';

const subcommands = ['put', 'import', 'rotate', 'revoke', 'list', 'policy'] as const;
type Subcommand = (typeof subcommands)[number];

const AUDIT_LOG_OPTION = `  --audit-log FILE   append one JSON line per action (who, what, user, version, when) to FILE
                     instead of stderr`;

const BULK_OPTIONS = `  --concurrency N    at most N developers at a time (default 16); starts at 4, halves when the
                     store or gateway throttles, grows again while calls succeed
  --max-rate R       at most R store calls a second from the first call (a share of a quota
                     you know, e.g. 20 of AWS's 50 writes/s); without it the rate is learned
                     from the store's first throttle
  --json             one JSON summary on stdout (counts, failures, who was not done)`;

const BULK_PARAGRAPH = `On a terminal a progress line shows done/total, rate, ETA and throttling; otherwise only the
summary is printed. Ctrl-C or SIGTERM starts no new developer, lets those in flight finish,
prints who was done and who was not, and exits 130.`;

export const adminCommand: Command = {
  name: 'admin',
  summary: "provision, rotate, revoke and list developers' keys; print the store's access policy",
  help: `Usage: keybroker admin <command> [options]

Commands (each works on every store type; keys are read from stdin or --from-file, never argv):
  put --user NAME [--expires-at T] [--from-file F]    store NAME's key (new secret or new version)
  import FILE [--format csv|json]                     many keys: CSV "user,key[,expires_at]" or JSON
                                                      [{"user","key","expires_at"}]; all validated first
  rotate (--user NAME | --all) [--grace D | --now]    a new key: from stdin/--from-file, or minted by
         [--dry-run] [--expires-at T]                 the profile's gateway key API ("keyIssuer")
  revoke --user NAME... [--purge]                     disable (soft) or delete the secret; delete the
                                                      key at the gateway when "keyIssuer" is set
  list [--json] [--max-age D] [--expiring-within D]   one row per developer, never a key
  policy [--store aws|azure|gcp|vault] [--only developer|admin] [--user NAME...]
                                                      a least-privilege access policy for the store

Options:
  --audit-log FILE   append one JSON line per action (who, what, user, version, when) to FILE
                     instead of stderr
  --grace D          how long the gateway keeps accepting the old key (default 24h)
  --now              retire the old key at once (same as --grace 0)
  --concurrency N    bulk actions (import, rotate --all, revoke of several): N at a time at most
  --max-rate R       bulk actions: R store calls a second at most
  --force            put/rotate with an --expires-at in the past (refused without it)

The gateway's admin credential is read from the environment variable the profile names in
"keyIssuer.masterKeyEnv" (default LITELLM_MASTER_KEY), never from argv.

Examples:
  keybroker admin import keys.csv --audit-log /var/log/keybroker-admin.log
  printf %s "$KEY" | keybroker admin put --user alice --expires-at 2027-01-31T00:00:00Z
  keybroker admin rotate --all --grace 24h --dry-run
  keybroker admin revoke --user bob
  keybroker admin list --json
  keybroker admin policy --store aws --only developer > developer.json

Run 'keybroker admin COMMAND --help' for one command's options and examples.`,
  subcommandHelp: {
    put: `Usage: keybroker admin put --user NAME [--expires-at T] [--from-file F] [--audit-log FILE]

Stores NAME's key in the profile's secret (its "secret" template with {user} = NAME): a new
secret, or a new version of it. The same key (and expiry) again writes nothing. The key is
read from stdin or --from-file (- for stdin), never from the command line.

Options:
  --user NAME        the developer (the {user} of the secret template)
  --expires-at T     when the key stops working, RFC 3339 (e.g. 2027-01-31T00:00:00Z)
  --from-file F      read the key from F instead of stdin
${AUDIT_LOG_OPTION}

Examples:
  printf %s "$KEY" | keybroker admin put --user alice
  keybroker admin put --user bob --from-file bob.key --expires-at 2027-01-31T00:00:00Z`,
    import: `Usage: keybroker admin import FILE [--format csv|json] [--concurrency N] [--max-rate R] [--json] [--audit-log FILE]

Stores many developers' keys. CSV: one "user,key[,expires_at]" per line (an optional
"user,key" header, # comments). JSON: [{"user": "...", "key": "...", "expires_at": "..."}].
Every row is checked first (user names, keys, expiry, duplicates; each problem with its line)
and nothing is written unless all pass. A failure part-way names who was and was not written;
running the same import again writes only the keys that are not already current.

Options:
  --format csv|json  the file's format (default: json for a .json file, else csv)
${BULK_OPTIONS}
${AUDIT_LOG_OPTION}

${BULK_PARAGRAPH}

Examples:
  keybroker admin import keys.csv
  keybroker admin import keys.json --audit-log /var/log/keybroker-admin.log`,
    rotate: `Usage: keybroker admin rotate (--user NAME | --all) [--grace D | --now] [--dry-run]
                              [--expires-at T] [--from-file F] [--audit-log FILE]
       keybroker admin rotate --resume --audit-log FILE

Gives developers a new key, in the order that locks no one out and leaves no key live at the
gateway that the store does not hold: mint a new key (or take the one given) -> write it as a
new version in the store (if that fails, the minted key is deleted at the gateway) -> retire
the old key at the gateway (its grace period starts only now).
With "keyIssuer" in the profile the gateway's key API mints one key per developer; without it
the new key comes from stdin or --from-file, for one --user only.

Options:
  --user NAME        the developer to rotate
  --all              every developer with an enabled key under the secret template
                     (needs "keyIssuer")
  --grace D          how long the gateway keeps accepting the old key (default 24h); a warning
                     when shorter than the refresh interval + 2 x Claude Code's helper TTL
  --now              retire the old key at once (same as --grace 0): developers recover
                     through Claude Code's 401 -> helper re-run
  --dry-run          print each developer's steps, change nothing
  --expires-at T     the new key's expiry, RFC 3339 (default: what the gateway says)
  --from-file F      read the new key from F instead of stdin
  --resume           first finish the rotations --audit-log FILE says were started and not
                     settled (a kill, a lost answer); alone, only that. A rotation with a file
                     --audit-log does this for its developers anyway
${BULK_OPTIONS}
${AUDIT_LOG_OPTION}

${BULK_PARAGRAPH}

The gateway's admin credential is read from the environment variable the profile names in
"keyIssuer.masterKeyEnv" (default LITELLM_MASTER_KEY), never from argv.

Examples:
  keybroker admin rotate --all --grace 24h --dry-run
  keybroker admin rotate --user alice --now
  printf %s "$NEW_KEY" | keybroker admin rotate --user bob`,
    revoke: `Usage: keybroker admin revoke --user NAME... [--purge] [--concurrency N] [--max-rate R] [--json] [--audit-log FILE]

Offboards a developer. With "keyIssuer" in the profile the key is first deleted at the
gateway (that is what ends access); then the secret is disabled in the store (recoverable:
a later 'admin put' brings it back), or deleted for good with --purge. When the stored value
cannot be read as a key, the gateway is asked to delete the keys keybroker minted for that
developer; if it cannot, the command fails (exit 8) naming what to delete by hand.

Options:
  --user NAME        the developer (repeat it to offboard several at once)
  --purge            delete the secret instead of disabling it
${BULK_OPTIONS}
${AUDIT_LOG_OPTION}

${BULK_PARAGRAPH}

Examples:
  keybroker admin revoke --user bob
  keybroker admin revoke --user bob --purge`,
    list: `Usage: keybroker admin list [--json] [--max-age D] [--expiring-within D]

One row per developer with a secret under the profile's template: version, created, last
rotated, expires, age, and flags (revoked, expired, expiring, stale). Never a key.

Options:
  --json               a JSON array instead of the table
  --max-age D          flag keys last rotated longer ago than D as stale (default 90d)
  --expiring-within D  flag keys that expire within D as expiring (default 14d)

Examples:
  keybroker admin list
  keybroker admin list --max-age 30d
  keybroker admin list --json | jq '.[] | select(.flags | length > 0) | .user'`,
    policy: `Usage: keybroker admin policy [--store aws|azure|gcp|vault] [--only developer|admin]
                              [--user NAME...]

Prints a least-privilege access policy for the store, so that each developer can read only
their own key and admins can write them, with a comment block on how to apply it. The store's
policy, not keybroker, is the security boundary.

Options:
  --store TYPE       the store type (default: the profile's); the profile's region, mount or
                     project are filled in when it is the profile's store
  --only ROLE        print one document alone (developer, admin; gcp also condition)
  --user NAME        a developer to bind (repeatable; gcp and azure bind per developer;
                     default: every developer with a key in the profile's store)

Examples:
  keybroker admin policy
  keybroker admin policy --store aws --only developer > developer.json
  keybroker admin policy --store gcp --user alice@example.com --user bob@example.com`,
  },
  allowPositionals: true,
  options: {
    user: { type: 'string', multiple: true },
    'from-file': { type: 'string' },
    'expires-at': { type: 'string' },
    format: { type: 'string' },
    all: { type: 'boolean' },
    grace: { type: 'string' },
    now: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    resume: { type: 'boolean' },
    purge: { type: 'boolean' },
    json: { type: 'boolean' },
    'max-age': { type: 'string' },
    'expiring-within': { type: 'string' },
    store: { type: 'string' },
    only: { type: 'string' },
    'audit-log': { type: 'string' },
    concurrency: { type: 'string' },
    'max-rate': { type: 'string' },
    force: { type: 'boolean' },
    // Accepted only to be refused with a useful message: keys never come from argv.
    key: { type: 'string' },
    'api-key': { type: 'string' },
  },
  async run(values, positionals, context) {
    const [sub, ...rest] = positionals;
    if (!sub || !(subcommands as readonly string[]).includes(sub)) {
      throw new UsageError(
        sub ? `unknown admin command "${sub}"` : 'admin needs a command',
        `use one of: ${subcommands.join(', ')} (keybroker admin --help)`,
      );
    }
    if (values['key'] !== undefined || values['api-key'] !== undefined) {
      throw new UsageError(
        'keys are never taken from the command line (shell history, process list)',
        'pipe the key on stdin or use --from-file FILE, and consider that key exposed',
      );
    }
    refuseKeysInArguments([
      ...rest,
      ...Object.values(values)
        .flat()
        .filter((value): value is string => typeof value === 'string'),
    ]);
    return runSubcommand(sub as Subcommand, values, rest, context);
  },
};

async function runSubcommand(sub: Subcommand, values: ParsedValues, rest: string[], context: RunContext): Promise<number> {
  const allowedPositionals = sub === 'import' ? 1 : 0;
  if (rest.length > allowedPositionals)
    throw new UsageError(`admin ${sub}: unexpected argument "${rest[allowedPositionals]}"`, `run 'keybroker admin ${sub} --help'`);
  const { loadConfigFor } = await import('../wiring.ts');
  const { callerTtlMs } = await import('../../claude/helper-ttl.ts');
  const config = loadConfigFor(values, context);

  if (sub === 'policy') return policy(values, config, context);
  refuseFootguns(sub, values, context.now());
  const deps = await adminDeps(values, config, context, sub !== 'list');
  const users = (values['user'] as string[] | undefined) ?? [];

  switch (sub) {
    case 'put': {
      const { putKey } = await import('../../admin/put.ts');
      const user = single(users, 'put');
      await putKey(deps, { user, key: await readKey(values), ...expiry(values) });
      return 0;
    }
    case 'import': {
      const { importKeys } = await import('../../admin/import.ts');
      const file = rest[0];
      if (!file) throw new UsageError('admin import needs a file', 'keybroker admin import keys.csv (or keys.json)');
      const format = values['format'] ?? (file.toLowerCase().endsWith('.json') ? 'json' : 'csv');
      if (format !== 'csv' && format !== 'json')
        throw new UsageError(`--format must be csv or json, not "${String(format)}"`, 'use --format csv or --format json');
      await bulk(deps, () => importKeys(deps, readFile(file), format, path.basename(file)));
      return 0;
    }
    case 'rotate': {
      const { rotateKeys } = await import('../../admin/rotate.ts');
      if (values['all'] && users.length) throw new UsageError('--all and --user exclude each other', 'give one of them');
      const resume = Boolean(values['resume']);
      if (!values['all'] && users.length !== 1 && !(resume && users.length === 0))
        throw new UsageError('admin rotate needs --user NAME or --all (or --resume alone)', 'keybroker admin rotate --user alice');
      if (resume && typeof values['audit-log'] !== 'string')
        throw new UsageError(
          '--resume needs --audit-log FILE: the log of the rotation it finishes (with the audit on stderr there is nothing to resume from)',
          'keybroker admin rotate --resume --audit-log /var/log/keybroker-admin.log',
        );
      const graceMs = values['now'] ? 0 : durationFlag(values, 'grace', '24h');
      const fromInput = values['from-file'] !== undefined || (!deps.issuer && !values['all'] && !resume);
      const key = fromInput ? await readKey(values) : undefined;
      await bulk(deps, () =>
        rotateKeys(
          deps,
          {
            users,
            ...(values['all'] ? { all: true } : {}),
            graceMs,
            dryRun: Boolean(values['dry-run']),
            ...(resume ? { resume } : {}),
            ...(key !== undefined ? { key } : {}),
            ...expiry(values),
          },
          callerTtlMs(context.env),
        ),
      );
      return 0;
    }
    case 'revoke': {
      const { revokeKeys } = await import('../../admin/revoke.ts');
      if (users.length === 0) throw new UsageError('admin revoke needs --user NAME (repeatable)', 'keybroker admin revoke --user alice');
      await bulk(deps, () => revokeKeys(deps, { users, purge: Boolean(values['purge']) }));
      return 0;
    }
    case 'list': {
      const { listKeys, renderTable } = await import('../../admin/list.ts');
      const rows = await listKeys(deps, {
        maxAgeMs: durationFlag(values, 'max-age', '90d'),
        expiringWithinMs: durationFlag(values, 'expiring-within', '14d'),
      });
      context.output.stdout(values['json'] ? `${JSON.stringify(rows, null, 2)}\n` : renderTable(rows, context.now()));
      return 0;
    }
  }
}

async function adminDeps(values: ParsedValues, config: LoadedConfig, context: RunContext, writes: boolean): Promise<AdminDeps> {
  const { openProvider } = await import('../../loader/open-store.ts');
  const { auditLog } = await import('../../admin/audit.ts');
  const { openKeyIssuer } = await import('../../gateway/issuers.ts');
  const { ThrottleRelay } = await import('../../admin/bulk.ts');
  const { profile } = config;
  const relay = new ThrottleRelay();
  const provider = await openProvider(profile, {
    env: context.env,
    debug: context.debug,
    onThrottle: (waitMs) => relay.notify(waitMs),
    paceCall: relay.pace,
  });
  // Who did it, for the audit and created_by: the admin as the store sees them.
  const actor = writes ? (await provider.whoami()).principal : 'unknown';
  const deps: AdminDeps = {
    provider,
    profile,
    valueFormat: config.sources['field'] ? 'json' : 'raw',
    now: context.now,
    output: context.output,
    audit: auditLog({
      ...(typeof values['audit-log'] === 'string' ? { file: values['audit-log'] } : {}),
      output: context.output,
      actor: () => actor,
      now: context.now,
    }),
    actor: () => actor,
    isTTY: context.isTTY,
    bulk: { ceiling: concurrencyFlag(values), ...maxRateFlag(values), relay },
    json: Boolean(values['json']),
  };
  if (profile.keyIssuer)
    deps.issuer = openKeyIssuer(profile.keyIssuer, {
      env: context.env,
      timeoutMs: Math.max(profile.timeoutMs, 10_000),
      ...(profile.allowInsecureHttp ? { allowInsecureHttp: true } : {}),
    });
  return deps;
}

async function policy(values: ParsedValues, config: LoadedConfig, context: RunContext): Promise<number> {
  const { policyRequestFor, renderPolicy } = await import('../../admin/policy.ts');
  const { profile } = config;
  const store = storeOf(profile); // an oidc profile has no secrets to write a policy for
  const type = (values['store'] ?? store.type) as string;
  if (!(storeTypes as readonly string[]).includes(type))
    throw new UsageError(`--store must be one of ${storeTypes.join(', ')}, not "${type}"`, 'e.g. --store aws');
  const { loadProviderModule } = await import('../../loader/chunks.ts');
  const { openProvider } = await import('../../loader/open-store.ts');
  const request = await policyRequestFor(type as StoreType, (values['user'] as string[] | undefined) ?? [], {
    profile,
    env: context.env,
    storageName: (await loadProviderModule(type as StoreType)).storageName,
    openProvider: () => openProvider(profile, { env: context.env, debug: context.debug }),
  });
  const result = renderPolicy(request);
  const mismatch = type === 'aws' ? userSourceMismatch(profile, undefined, '') : undefined;
  if (mismatch)
    context.output.stderr(
      `keybroker: warning: profile "${profile.name}" has "user": "os": ${mismatch.finding}; where a laptop login differs from the IAM user name, that developer gets exit 6: ${mismatch.fix}`,
    );
  const only = values['only'];
  if (only !== undefined) {
    const document = result.documents[String(only)];
    if (!document) throw new UsageError(`--only must be one of ${Object.keys(result.documents).join(', ')}`, 'e.g. --only developer');
    context.output.stdout(document.endsWith('\n') ? document : `${document}\n`);
  } else {
    context.output.stdout(result.text);
  }
  return 0;
}

/**
 * Runs a bulk action with SIGINT/SIGTERM turned into "start no new row": the rows in flight
 * finish and the action reports exactly who was done and who was not, then exits 130.
 */
async function bulk<T>(deps: AdminDeps, action: () => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  deps.bulk = { ...(deps.bulk ?? { ceiling: 16 }), signal: controller.signal };
  try {
    return await action();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Mistakes an admin makes once: refused before any store call, unless --force says they are meant. */
function refuseFootguns(sub: Subcommand, values: ParsedValues, now: number): void {
  if (values['grace'] !== undefined && values['now'])
    throw new UsageError('--grace and --now contradict each other (--now is --grace 0)', 'give one of them');
  if (values['force'] || (sub !== 'put' && sub !== 'rotate')) return;
  const expiresAt = expiry(values).expiresAt;
  if (expiresAt && expiresAt.getTime() <= now) {
    throw new UsageError(
      `--expires-at ${expiresAt.toISOString()} is in the past: the key would be refused at once`,
      'give a future time (RFC 3339), or add --force to store an expired key on purpose',
    );
  }
}

function concurrencyFlag(values: ParsedValues): number {
  const text = values['concurrency'];
  if (text === undefined) return 16;
  const count = typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(count >= 1 && count <= 256))
    throw new UsageError(
      `--concurrency must be a whole number from 1 to 256, not "${String(text)}"`,
      'e.g. --concurrency 8 to stay under a shared quota',
    );
  return count;
}

function maxRateFlag(values: ParsedValues): { maxRate?: number } {
  const text = values['max-rate'];
  if (text === undefined) return {};
  const rate = typeof text === 'string' && /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(rate >= 0.1 && rate <= 100_000))
    throw new UsageError(
      `--max-rate must be a number of store calls a second from 0.1 to 100000, not "${String(text)}"`,
      'e.g. --max-rate 20 to use 20 of a 50-a-second quota',
    );
  return { maxRate: rate };
}

function single(users: string[], sub: string): string {
  if (users.length !== 1) throw new UsageError(`admin ${sub} needs exactly one --user NAME`, `keybroker admin ${sub} --user alice`);
  return users[0]!;
}

function expiry(values: ParsedValues): { expiresAt?: Date } {
  const text = values['expires-at'];
  if (typeof text !== 'string') return {};
  return { expiresAt: parseExpiry(text, `--expires-at "${text}"`) };
}

function durationFlag(values: ParsedValues, name: string, fallback: string): number {
  const text = typeof values[name] === 'string' ? (values[name] as string) : fallback;
  if (text === '0') return 0;
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`--${name} "${text}" is not a duration`, 'write it like 90s, 15m, 24h or 30d');
  return ms;
}

async function readKey(values: ParsedValues): Promise<string> {
  const file = values['from-file'];
  if (file === '-') return readKeyInput(fs.readFileSync(0, 'utf8'), 'stdin');
  if (typeof file === 'string') return readKeyInput(readFile(file), file);
  if (process.stdin.isTTY)
    throw new UsageError(
      'no key on stdin (it is a terminal)',
      'pipe the key: printf %s "$KEY" | keybroker admin …, or use --from-file FILE',
    );
  return readKeyInput(fs.readFileSync(0, 'utf8'), 'stdin');
}

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code})`, 'check the path and its permissions');
  }
}
