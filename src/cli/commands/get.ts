// `keybroker get` (and plain `keybroker`): the developer's key on stdout, nothing else.
import type { Command } from '../command.ts';
import { getKey, refreshAhead, type Served } from '../../broker/broker.ts';
import { brokerDeps, configForMcp, loadConfigFor } from '../wiring.ts';
import { DESKTOP_DEFAULT_TTL_MS, desktopCredential, helperContext } from '../../claude/surfaces.ts';
import { memoryRotationState } from '../../broker/rotation-state.ts';
import { noCache } from '../../cache/cache-store.ts';

export const getCommand: Command = {
  name: 'get',
  summary: "print the developer's gateway key (what Claude Code's apiKeyHelper runs)",
  help: `Usage: keybroker [get] [--profile NAME] [--recheck] [--json]

Prints your LLM-gateway key on stdout with no newline, for Claude Code's apiKeyHelper.
A fresh key comes from the cache (the OS keychain); otherwise from the company's secrets
store, and is cached. Never prompts. On failure: nothing on stdout, one line on stderr
saying what to do, and an exit code from the table in the README.

When the same Claude Code process asks again before its key's TTL is over, it was just
refused with a 401: keybroker then asks the store for a newer key instead of the cache
(and, if the store has none, asks the gateway whether the key was revoked).
If the store cannot be reached, a cached key that has not expired is served with a warning.

As Claude Desktop / Cowork's inferenceCredentialHelper (CLAUDE_HELPER_CONTEXT set), it prints the
bare key, or {"token": …, "headers": {…}} when the profile has "gatewayHeaders":
  interactive, scheduled-task, background   as get (never prompts)
  mid-session-refresh                       the gateway refused the key: re-read the store (--recheck)
  setup-test                                read the store, write no cache, lock or state

A cached key nearing its refresh interval is served at once and re-read from the store by a
detached background run (keybroker get --refresh-ahead), so a warm get stays fast.

Options:
  --recheck         ignore a fresh cached key and ask the store (what a 401 does)
  --refresh-ahead   re-read the store into the cache and print nothing (what the background run does)
  --json            for scripts that want the expiry: one line on stdout,
                    {"Version": 1, "key": "…", "version": "…", "expires_at": "<RFC 3339>" or null}
                    (Version is the shape's version, as in AWS credential_process; version the key's)

Examples:
  keybroker                      # what Claude Code runs
  keybroker get --profile eu     # another gateway's key
  keybroker get --recheck        # after an admin rotated the key
  keybroker get --json           # the key with its version and expiry, for a script`,
  options: { recheck: { type: 'boolean' }, 'refresh-ahead': { type: 'boolean' }, json: { type: 'boolean' } },
  async run(values, _positionals, context) {
    const { config } = configForMcp(loadConfigFor(values, context), values, context);
    if (values['refresh-ahead'] === true) {
      // keybroker's own detached background refresh: prints nothing, whatever happens.
      context.debug(`background refresh: ${await refreshAhead(brokerDeps(config, context))}`);
      return 0;
    }
    const backgroundArgs = ['get', '--refresh-ahead'];
    if (typeof values['config'] === 'string') backgroundArgs.push('--config', values['config']);
    backgroundArgs.push('--profile', config.profile.name);
    const desktop = helperContext(context.env);
    const deps = brokerDeps(config, context, desktop === 'setup-test' ? {} : { backgroundArgs });
    if (desktop !== undefined) {
      context.debug(`Claude Desktop helper context: ${desktop}`);
      // The caller is the desktop app, which says itself when it was refused (mid-session-refresh).
      deps.caller = undefined;
      deps.callerTtlMs = DESKTOP_DEFAULT_TTL_MS;
      if (desktop === 'setup-test') {
        // The app's configuration test: a real store read that leaves nothing behind.
        Object.assign(deps, { cache: noCache, state: memoryRotationState(), lock: { acquire: async () => async () => {} } });
      }
    }
    const recheck = values['recheck'] === true || desktop === 'mid-session-refresh';
    const served = await getKey(deps, { recheck });
    context.debug(`served version ${served.version} of "${served.secret}" from ${served.from}`);
    if (values['json'] === true) context.output.stdout(`${keyDocument(served)}\n`);
    else context.output.stdout(desktop === undefined ? served.key : desktopCredential(config.profile, served.key));
    return 0;
  },
};

/** `get --json`: the key with its version and expiry, in the shape of AWS's credential_process output (Version 1). */
function keyDocument(served: Served): string {
  return JSON.stringify({
    Version: 1,
    key: served.key,
    version: served.version,
    expires_at: served.expiresAt === undefined ? null : new Date(served.expiresAt).toISOString(),
  });
}
