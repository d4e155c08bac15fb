// `keybroker cache clear`: forget the cached key (of one profile, or of every profile).
import type { Command } from '../command.ts';
import { UsageError } from '../../kernel/errors.ts';
import { cacheAccount, knownCacheAccount, refreshTokenAccount } from '../../cache/account.ts';
import { osLoginName } from '../../kernel/login-name.ts';
import { profileNames, resolveProfile } from '../../config/config.ts';
import { loadConfigFor } from '../wiring.ts';
import { clearCachedKeys } from '../../cache/clear.ts';

export const cacheCommand: Command = {
  name: 'cache',
  summary: 'cache clear: forget the cached key (the next get reads the store)',
  help: `Usage: keybroker cache clear [--profile NAME] [--all]

Removes the cached key of the profile from the OS keychain and from the file cache, so that
the next 'keybroker get' reads the store again, and what no profile uses any more: keys cached
before a profile's store, secret, field or user changed, keys of removed profiles, unfinished
writes (*.tmp, of the cache and of the keychain addon). The store is not touched. Files are cleared
without the keychain; a keychain that cannot be opened (locked, or its addon cannot be extracted on a
full disk) keeps its entries, and clear says so on stderr and still exits 0: such a keychain serves
nothing either ("backend": "keychain" then exits 9 on get). Run it again once the keychain opens.

Options:
  --all     every keybroker entry, of every profile, not just the one in use

Examples:
  keybroker cache clear
  keybroker cache clear --all`,
  options: { all: { type: 'boolean' } },
  allowPositionals: true,
  async run(values, positionals, context) {
    if (positionals[0] !== 'clear' || positionals.length > 1) {
      throw new UsageError(
        positionals.length ? `unknown cache command "${positionals.join(' ')}"` : 'cache: say what to do',
        "run 'keybroker cache clear' (see 'keybroker cache --help')",
      );
    }
    const config = loadConfigFor(values, context);
    const osUser = () => osLoginName(context.env);
    const names = values['all'] ? profileNames(config.layers) : [config.profile.name];
    const profiles = names.map((name) => (name === config.profile.name ? config.profile : resolveProfile(config.layers, name).profile));
    const current = profileNames(config.layers).flatMap((name) => {
      try {
        const profile = name === config.profile.name ? config.profile : resolveProfile(config.layers, name).profile;
        // An SSO profile's sign-in (its refresh token) is logout's to remove, not cache clear's.
        return profile.oidc ? [cacheAccount(profile), refreshTokenAccount(profile)] : [cacheAccount(profile, osUser)];
      } catch {
        return [];
      }
    });
    const { removed, leftovers, keychainUnusable } = await clearCachedKeys(profiles, context.env, context.debug, {
      sweep: { everything: Boolean(values['all']), current },
      leaveUnusableKeychain: true,
    });
    for (const profile of profiles) {
      const where = removed.get(knownCacheAccount(profile, osUser) ?? '') ?? [];
      const left =
        keychainUnusable && profile.cache.backend === 'keychain' ? '; the keychain could not be opened: an entry there is left' : '';
      context.output.stdout(
        `profile "${profile.name}": ${where.length ? `removed the cached key from ${where.join(' and ')}` : 'no cached key'}${left}\n`,
      );
    }
    if (keychainUnusable) {
      // Not a failure of clear: a keychain that cannot be opened serves nothing either (get exits 9).
      context.output.stderr(
        `keybroker: the keychain was not cleared (${keychainUnusable.message}): its keybroker entries are left; run 'keybroker cache clear' again once it can be opened`,
      );
    }
    if (leftovers)
      context.output.stdout(
        `removed ${leftovers} more: keys cached under earlier settings or for removed profiles, and unfinished writes\n`,
      );
    return 0;
  },
};
