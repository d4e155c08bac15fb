// `keybroker status`: the profile and its cached key's state; no network unless --refresh.
import { osLoginName } from '../../kernel/login-name.ts';
import type { Command } from '../command.ts';
import { UsageError } from '../../kernel/errors.ts';
import { getKey } from '../../broker/broker.ts';
import { brokerDeps, loadConfigFor } from '../wiring.ts';
import { callerTtlMs } from '../../claude/helper-ttl.ts';
import { cacheStatus, formatStatus } from '../../broker/status.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'show the profile and the cached key (fingerprint, version, age, expiry, next refresh)',
  help: `Usage: keybroker status [--profile NAME] [--json] [--refresh | --check]

Shows the profile in use, its store, the resolved secret name, the cache backend, and the
cached key: its fingerprint (never the key), version, age, expiry and when it is next
refreshed. Reads the cache only: no network, unless --refresh.

Options:
  --refresh   first read the store and replace the cached key (as after a rotation)
  --check     who am I: the store identity and whether your secret is readable (one store
              read; nothing cached, no gateway request); exits as get would when it is not
  --json      one JSON document instead of the table

Examples:
  keybroker status
  keybroker status --refresh          # pick up a key your admin just rotated
  keybroker status --json | jq .cached.fingerprint
  keybroker status --check            # for a support desk: who the store says you are`,
  options: {
    json: { type: 'boolean' },
    refresh: { type: 'boolean' },
    check: { type: 'boolean' },
  },
  async run(values, _positionals, context) {
    const config = loadConfigFor(values, context);
    const deps = brokerDeps(config, context);
    if (values['check']) {
      if (values['refresh'])
        throw new UsageError(
          '--check and --refresh exclude each other',
          '--check reads the store and keeps nothing; --refresh replaces the cached key',
        );
      const { checkStore, formatStoreCheck } = await import('../../broker/store-check.ts');
      const { check, failure } = await checkStore(deps);
      context.output.stdout(values['json'] ? `${JSON.stringify(check, null, 2)}\n` : formatStoreCheck(check));
      if (failure) throw failure;
      return 0;
    }
    if (values['refresh']) {
      const served = await getKey(deps, { recheck: true });
      context.debug(`refreshed: version ${served.version} of "${served.secret}" from ${served.from}`);
    }
    const status = await cacheStatus(config, {
      cache: deps.cache,
      now: context.now,
      osUser: () => osLoginName(context.env),
      callerTtlMs: callerTtlMs(context.env),
    });
    context.output.stdout(values['json'] ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, context.now()));
    return 0;
  },
};
