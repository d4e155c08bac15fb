// `keybroker login`: log in to the store the way its ecosystem does, then warm the cache.
import type { Command } from '../command.ts';
import { getKey } from '../broker.ts';
import { brokerDeps, loadConfigFor } from '../runtime.ts';
import { login, openInBrowser } from '../login.ts';

export const loginCommand: Command = {
  name: 'login',
  summary: 'log in to the store (browser flow, or the exact CLI command), then cache the key',
  help: `Usage: keybroker login [--profile NAME]

Does the interactive part that 'keybroker get' never does. Stores with a browser flow in
keybroker (Vault OIDC) run it here. For the cloud stores, whose own CLI owns the login
(aws sso login, az login, gcloud auth application-default login), it prints the exact
command when you are not logged in. Then it reads your key and caches it, so that the next
Claude Code call is fast.

Exit code: 0 when the key is cached; 4 when you still need to run the printed command.

Examples:
  keybroker login
  keybroker login --profile eu`,
  options: {},
  async run(values, _positionals, context) {
    const config = loadConfigFor(values, context);
    const deps = brokerDeps(config, context);
    const provider = await deps.openProvider();
    const say = (line: string) => context.output.stderr(`keybroker: ${line}`);
    const result = await login({
      provider,
      say,
      openBrowser: (url) => openInBrowser(url, say),
      refresh: () => getKey(deps, { recheck: true }),
    });
    if (result.kind === 'needs-cli-login') {
      context.output.stdout(`${result.command}\n`);
      say(`${result.error.message}: run the command above, then 'keybroker login' again`);
      return result.error.exitCode;
    }
    return 0;
  },
};
