// `keybroker logout`: forget an `oidc` profile's sign-in (refresh token) and its access token.
import type { Command } from '../command.ts';
import { cacheAccount, refreshTokenAccount } from '../../cache/account.ts';
import { clearCachedKeys } from '../../cache/clear.ts';
import { osLoginName } from '../../kernel/login-name.ts';
import { loadConfigFor } from '../wiring.ts';

export const logoutCommand: Command = {
  name: 'logout',
  summary: 'forget the SSO sign-in of an oidc profile (refresh and access tokens)',
  help: `Usage: keybroker logout [--profile NAME]

Removes the profile's refresh token and cached access token from the OS keychain and the file
cache. The next 'keybroker get' then fails with exit 4 until 'keybroker login'. For a profile
with a "store", it removes the cached key (as 'keybroker cache clear').

Examples:
  keybroker logout
  keybroker logout --profile corp-sso`,
  options: {},
  async run(values, _positionals, context) {
    const { profile } = loadConfigFor(values, context);
    const account = cacheAccount(profile, () => osLoginName(context.env));
    const { removed } = await clearCachedKeys([profile], context.env, context.debug, {
      accountsOf: (chosen) => [account, refreshTokenAccount(chosen)],
    });
    const token = removed.get(account) ?? [];
    const refresh = removed.get(refreshTokenAccount(profile)) ?? [];
    const parts = [
      refresh.length ? `removed the sign-in (refresh token) from ${refresh.join(' and ')}` : 'no sign-in kept',
      token.length
        ? `removed the cached ${profile.oidc ? 'access token' : 'key'} from ${token.join(' and ')}`
        : `no cached ${profile.oidc ? 'access token' : 'key'}`,
    ];
    context.output.stdout(`profile "${profile.name}": ${parts.join('; ')}\n`);
    return 0;
  },
};
