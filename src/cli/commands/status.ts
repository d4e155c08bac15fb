// `keybroker status`: the profile and its cached key's state; no network unless --refresh.
import { osLoginName } from '../../kernel/login-name.ts';
import type { Command } from '../command.ts';
import { getKey } from '../../broker/broker.ts';
import { brokerDeps, loadConfigFor } from '../wiring.ts';
import { callerTtlMs } from '../../claude/helper-ttl.ts';
import { cacheStatus, formatStatus } from '../../broker/status.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'show the profile and the cached key (fingerprint, version, age, expiry, next refresh)',
  help: `Usage: keybroker status [--profile NAME] [--json] [--refresh]

Shows the profile in use, its store, the resolved secret name, the cache backend, and the
cached key: its fingerprint (never the key), version, age, expiry and when it is next
refreshed. Reads the cache only: no network, unless --refresh.

Options:
  --refresh   first read the store and replace the cached key (as after a rotation)
  --json      one JSON document instead of the table

Examples:
  keybroker status
  keybroker status --refresh          # pick up a key your admin just rotated
  keybroker status --json | jq .cached.fingerprint`,
  options: {
    json: { type: 'boolean' },
    refresh: { type: 'boolean' },
  },
  async run(values, _positionals, context) {
    const config = loadConfigFor(values, context);
    const deps = brokerDeps(config, context);
    if (values['refresh']) {
      const served = await getKey(deps, { recheck: true });
      context.debug(`refreshed: version ${served.version} of "${served.secret}" from ${served.from}`);
    }
    const status = await cacheStatus(config, { cache: deps.cache, now: context.now, osUser: () => osLoginName(context.env), callerTtlMs: callerTtlMs(context.env) });
    context.output.stdout(values['json'] ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status, context.now()));
    return 0;
  },
};
