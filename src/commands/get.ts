// `keybroker get` (and plain `keybroker`): the developer's key on stdout, nothing else.
import type { Command } from '../command.ts';
import { getKey } from '../broker.ts';
import { brokerDeps, loadConfigFor } from '../runtime.ts';

export const getCommand: Command = {
  name: 'get',
  summary: 'print the developer\'s gateway key (what Claude Code\'s apiKeyHelper runs)',
  help: `Usage: keybroker [get] [--profile NAME] [--recheck]

Prints your LLM-gateway key on stdout with no newline, for Claude Code's apiKeyHelper.
A fresh key comes from the cache (the OS keychain); otherwise from the company's secrets
store, and is cached. Never prompts. On failure: nothing on stdout, one line on stderr
saying what to do, and an exit code from the table in the README.

When the same Claude Code process asks again before its key's TTL is over, it was just
refused with a 401: keybroker then asks the store for a newer key instead of the cache
(and, if the store has none, asks the gateway whether the key was revoked).
If the store cannot be reached, a cached key that has not expired is served with a warning.

Options:
  --recheck         ignore a fresh cached key and ask the store (what a 401 does)

Examples:
  keybroker                      # what Claude Code runs
  keybroker get --profile eu     # another gateway's key
  keybroker get --recheck        # after an admin rotated the key`,
  options: { recheck: { type: 'boolean' } },
  async run(values, _positionals, context) {
    const config = loadConfigFor(values, context);
    const served = await getKey(brokerDeps(config, context), { recheck: values['recheck'] === true });
    context.debug(`served version ${served.version} of "${served.secret}" from ${served.from}`);
    context.output.stdout(served.key);
    return 0;
  },
};
