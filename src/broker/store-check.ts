// `keybroker status --check`: who the store says the developer is and whether their secret is
// readable, for a support desk. One store read; no cache, lock, state or gateway.
import { KeybrokerError, UsageError } from '../kernel/errors.ts';
import { resolveSecretName } from '../secret/name.ts';
import { fingerprint, parseSecretValue } from '../secret/value.ts';
import type { BrokerDeps } from './broker.ts';

export interface StoreCheck {
  store: string;
  principal: string;
  /** What `{user}` resolves to, and from where. */
  user: string;
  userFrom: 'store' | 'os';
  secret: string;
  readable: boolean;
  version?: string;
  fingerprint?: string;
  expiresAt?: string;
  /** Why it is not readable: the same line `get` would print. */
  error?: string;
}

/** Reads the store as `get` would, keeps nothing; a failure is reported in the result, never thrown past it. */
export async function checkStore(
  deps: Pick<BrokerDeps, 'profile' | 'openProvider' | 'osUser'>,
): Promise<{ check: StoreCheck; failure?: KeybrokerError }> {
  const { profile } = deps;
  if (profile.oidc)
    throw new UsageError(
      `profile "${profile.name}" signs in with SSO, it reads no store`,
      "run 'keybroker doctor' to check the sign-in and the token",
    );
  const provider = await deps.openProvider();
  const identity = await provider.whoami();
  const user = profile.user === 'store' ? identity.user : deps.osUser();
  const secret = resolveSecretName(
    profile.secret,
    user,
    profile.user === 'store' ? `the store identity (${provider.describe()})` : 'the OS login',
  );
  const check: StoreCheck = {
    store: provider.describe(),
    principal: identity.principal,
    user,
    userFrom: profile.user,
    secret,
    readable: false,
  };
  try {
    const current = await provider.readCurrent(secret);
    const parsed = parseSecretValue(current.value, profile.field, `secret "${secret}"`);
    Object.assign(check, { readable: true, version: current.version, fingerprint: fingerprint(parsed.key) });
    // The earlier of the JSON expires_at and the store's own, the expiry get caches and acts on.
    const expiries = [parsed.expiresAt, current.expiresAt].flatMap((date) => (date ? [date.getTime()] : []));
    if (expiries.length) check.expiresAt = new Date(Math.min(...expiries)).toISOString();
    return { check };
  } catch (error) {
    if (!(error instanceof KeybrokerError)) throw error;
    check.error = error.line();
    return { check, failure: error };
  }
}

export function formatStoreCheck(check: StoreCheck): string {
  const lines = [
    `store:    ${check.store}`,
    `you are:  ${check.principal} ({user} = ${check.user}, from the ${check.userFrom === 'store' ? 'store identity' : 'OS login'})`,
    `secret:   "${check.secret}": ${check.readable ? `readable, version ${check.version}, ${check.fingerprint}${check.expiresAt ? `, expires ${check.expiresAt}` : ''}` : 'NOT readable (below)'}`,
  ];
  return `${lines.join('\n')}\n`;
}
