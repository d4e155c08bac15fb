// `keybroker login`: log in to the store the way its ecosystem does, then warm the cache.
import type { Command } from '../command.ts';
import { getKey } from '../../broker/broker.ts';
import { brokerDeps, loadConfigFor, ssoDeps } from '../wiring.ts';
import { ssoLogin } from '../../sso/tokens.ts';
import { UsageError } from '../../kernel/errors.ts';
import { login, openInBrowser } from '../../broker/login.ts';
import { cacheAccount } from '../../cache/account.ts';

export const loginCommand: Command = {
  name: 'login',
  summary: 'log in to the store (browser flow, or the exact CLI command), then cache the key',
  help: `Usage: keybroker login [--profile NAME] [--no-browser] [--flow device|browser]

For a profile with an "oidc" section (SSO tokens): signs in to the identity provider with the
device flow (the address and code are printed on stderr: open it on any device, also over SSH)
or the browser flow (authorization code + PKCE, redirected to 127.0.0.1 on this machine), then
keeps the refresh token in the keychain and caches the access token. 'keybroker get' refreshes
it from then on without prompting.

Does the interactive part that 'keybroker get' never does. Stores with a browser flow in
keybroker (Vault OIDC) run it here: the sign-in address is printed on stderr and opened with
$BROWSER (a ':'-separated list of programs, %s for the address) or else the desktop's opener
(xdg-open, open), handed as a private file:// page that leads to it (a command line is
visible to every local user); the Vault token is kept in ~/.vault-token (0600), as 'vault login' does.
For the cloud stores, whose own CLI owns the login (aws sso login, az login, gcloud auth
application-default login), it prints the exact command on stdout when you are not logged
in. Then it reads your key and caches it, so that the next Claude Code call is fast. It
never prints the key.

Options:
  --no-browser      only print the sign-in address (to open it yourself, e.g. over SSH with
                    the callback port forwarded)

Exit code: 0 when the key is cached (read back from the cache to be sure), or when the profile
caches nothing (cache backend "none": said so); 9 when the key was read but the cache did not
keep it; 4 when you still need to run the printed command.

Examples:
  keybroker login
  keybroker login --profile eu
  keybroker login --no-browser`,
  options: { 'no-browser': { type: 'boolean' }, flow: { type: 'string' } },
  async run(values, _positionals, context) {
    const config = loadConfigFor(values, context);
    const flow = values['flow'];
    if (flow !== undefined && flow !== 'device' && flow !== 'browser')
      throw new UsageError(`--flow must be "device" or "browser", not "${String(flow)}"`, 'e.g. --flow device');
    if (config.profile.oidc) {
      const say = (line: string) => context.output.stderr(`keybroker: ${line}`);
      await ssoLogin(
        await ssoDeps(config, context),
        {
          say,
          openBrowser: async (url) => {
            if (values['no-browser']) return;
            await openInBrowser(url, { env: context.env, say, debug: context.debug });
          },
        },
        flow ?? config.profile.oidc.flow ?? 'device',
      );
      return 0;
    }
    if (flow !== undefined)
      throw new UsageError(
        `--flow is for SSO profiles, and profile "${config.profile.name}" reads a store (${config.profile.store?.type})`,
        "run 'keybroker login' without --flow, or pick an SSO profile with --profile",
      );
    const deps = brokerDeps(config, context);
    const provider = await deps.openProvider();
    const say = (line: string) => context.output.stderr(`keybroker: ${line}`);
    const result = await login({
      provider,
      say,
      openBrowser: async (url) => {
        if (values['no-browser']) return;
        await openInBrowser(url, { env: context.env, say, debug: context.debug });
      },
      // Always the store: the verdict of a recent 401 re-check (kept 15 s) must not answer for a login.
      refresh: () => getKey({ ...deps, state: { ...deps.state, lastRecheck: () => undefined } }, { recheck: true }),
      cache: deps.cache,
      account: cacheAccount(config.profile, deps.osUser),
    });
    if (result.kind === 'not-cached') throw result.error;
    if (result.kind === 'needs-cli-login') {
      context.output.stdout(`${result.command}\n`);
      say(`${result.error.message}: run the command above, then 'keybroker login' again`);
      return result.error.exitCode;
    }
    return 0;
  },
};
