// Layer 2: the store, through the Provider interface only (any store type works the same way).
import { AccessDenied, type KeybrokerError, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../kernel/errors.ts';
import { parseSecretValue, fingerprint } from '../secret/value.ts';
import { resolveSecretName } from '../secret/name.ts';
import { formatDuration } from '../kernel/duration.ts';
import { CLOCK_SLACK_MS, expiryMarginMs } from '../broker/broker.ts';
import { callerTtlMs } from '../claude/helper-ttl.ts';
import { userSourceMismatch } from '../secret/user-source.ts';
import { fail, ok, skip, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from './state.ts';

/** Each store call's bound in the doctor: short enough that a black-holed store leaves time for the rest. */
const STORE_CALL_TIMEOUT_MS = 4_000;
/** An expiry closer than this is worth a warning: the admin has time to rotate. */
const EXPIRY_WARNING_MS = 7 * 86_400_000;

/** The store checks in order, each a function below over one shared context. */
export function storeChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const context: CheckContext = { deps, state };
  return [
    {
      id: 'store.identity',
      layer: 'store',
      title: 'store identity',
      timeoutMs: STORE_CALL_TIMEOUT_MS + 1_000,
      run: () => checkStoreIdentity(context),
    },
    { id: 'store.secret-name', layer: 'store', title: 'secret name', timeoutMs: 1_000, run: async () => checkSecretName(context) },
    {
      id: 'store.read',
      layer: 'store',
      title: 'secret readable',
      timeoutMs: STORE_CALL_TIMEOUT_MS + 1_000,
      run: () => checkSecretRead(context),
    },
    { id: 'store.value', layer: 'store', title: 'key usable', timeoutMs: 1_000, run: async () => checkKeyUsable(context) },
    { id: 'store.expiry', layer: 'store', title: 'key expiry', timeoutMs: 1_000, run: async () => checkKeyExpiry(context) },
  ];
}

const needConfig = (state: DoctorState): CheckOutcome | undefined =>
  state.config ? undefined : skip('no usable configuration', 'fix the configuration first');

/** Opens the store and asks who the developer is; a store that cannot answer blocks the later store calls. */
async function checkStoreIdentity({ deps, state }: CheckContext): Promise<CheckOutcome> {
  const missing = needConfig(state);
  if (missing) return missing;
  const timeoutMs = Math.min(state.config!.profile.timeoutMs, STORE_CALL_TIMEOUT_MS);
  try {
    state.provider = await deps.openProvider(state.config!, timeoutMs);
  } catch (error) {
    state.storeBlocked = 'the store could not be opened';
    throw error;
  }
  const started = deps.now();
  try {
    state.identity = await state.provider.whoami();
  } catch (error) {
    if (error instanceof NotAuthenticated || error instanceof StoreUnreachable) state.storeBlocked = error.message;
    throw error;
  }
  return ok(`${state.provider.describe()} answered in ${deps.now() - started} ms; you are ${state.identity.principal}`, {
    store: state.provider.describe(),
    principal: state.identity.principal,
    user: state.identity.user,
  });
}

/** The secret's name with {user} filled in, and whether {user} comes from where the profile says. */
export function checkSecretName({ deps, state }: CheckContext): CheckOutcome {
  const missing = needConfig(state);
  if (missing) return missing;
  const { profile } = state.config!;
  if (profile.user === 'store' && !state.identity)
    return skip(`"{user}" comes from the store identity, which is unknown`, 'fix the store identity first');
  const user = profile.user === 'store' ? state.identity!.user : deps.osUser();
  const from = profile.user === 'store' ? 'the store identity' : 'the OS login';
  state.secret = resolveSecretName(profile.secret, user, from);
  const how = profile.secret.includes('{user}') ? ` (template "${profile.secret}", {user} = "${user}" from ${from})` : '';
  const details = { secret: state.secret, template: profile.secret };
  if (!profile.secret.includes('{user}')) {
    return warn(
      `"${state.secret}" has no {user}: every developer reads this one shared key, and the admin commands refuse such a template`,
      'put {user} in the profile\'s "secret" (e.g. "claude-code/keys/{user}")',
      details,
    );
  }
  const mismatch = userSourceMismatch(profile, state.identity?.user, user);
  if (mismatch) return warn(`"${state.secret}"${how}; ${mismatch.finding}`, mismatch.fix, details);
  return ok(`"${state.secret}"${how}`, details);
}

/** Reads the secret's current version (its value stays in memory for the next check only). */
async function checkSecretRead({ deps, state }: CheckContext): Promise<CheckOutcome> {
  if (!state.provider || !state.secret) return skip('the store or the secret name is unknown', 'fix the checks above first');
  if (state.storeBlocked) return skip(`not tried: ${state.storeBlocked}`, 'fix the store identity first');
  const current = await state.provider.readCurrent(state.secret);
  state.rawValue = current.value;
  state.version = current.version;
  if (current.expiresAt) state.storeExpiresAt = current.expiresAt;
  const created = current.createdAt
    ? `, created ${current.createdAt.toISOString()} (${formatDuration(deps.now() - current.createdAt.getTime())} ago)`
    : '';
  return ok(`read version ${current.version}${created}`, { version: current.version, createdAt: current.createdAt?.toISOString() });
}

/** The value read holds a key Claude Code accepts (named by its fingerprint); the key is kept for the gateway checks. */
export function checkKeyUsable({ state }: CheckContext): CheckOutcome {
  if (state.rawValue === undefined) return skip('the secret was not read', 'fix the checks above first');
  const parsed = parseSecretValue(state.rawValue, state.config!.profile.field, `secret "${state.secret}"`);
  state.rawValue = undefined;
  state.key = parsed.key;
  state.keyFrom = `the store (version ${state.version})`;
  const expiries = [parsed.expiresAt, state.storeExpiresAt].filter((date): date is Date => date !== undefined);
  if (expiries.length) state.storeExpiresAt = new Date(Math.min(...expiries.map((date) => date.getTime())));
  return ok(`a key Claude Code accepts: ${fingerprint(parsed.key)}, ${parsed.key.length} characters`, {
    fingerprint: fingerprint(parsed.key),
    length: parsed.key.length,
  });
}

/** How long the key has left: expired (get refuses it), inside get's refresh margin, within a week, or fine. */
export function checkKeyExpiry({ deps, state }: CheckContext): CheckOutcome {
  if (!state.key || !state.config) return skip('no key was read from the store');
  const expires = state.storeExpiresAt;
  if (!expires) return ok('no expiry set (expires_at absent)');
  const left = expires.getTime() - deps.now();
  const at = expires.toISOString();
  const margin = expiryMarginMs(callerTtlMs(deps.env));
  if (left <= CLOCK_SLACK_MS)
    return fail(
      `the key expired at ${at}${left < 0 ? ` (${formatDuration(-left)} ago)` : ''}; get refuses it`,
      'ask your admin to rotate it (keybroker admin rotate)',
      { expiresAt: at },
    );
  if (left <= margin)
    return warn(
      `the key expires at ${at}, in ${formatDuration(left)}: get already refreshes it on every call`,
      'ask your admin to rotate it soon',
      { expiresAt: at },
    );
  if (left <= EXPIRY_WARNING_MS)
    return warn(`the key expires at ${at}, in ${formatDuration(left)}`, 'ask your admin to rotate it before then', { expiresAt: at });
  return ok(`expires at ${at}, in ${formatDuration(left)}`, { expiresAt: at });
}

/** A store error as a verdict: its own message and fix. */
export function storeErrorOutcome(error: KeybrokerError): CheckOutcome {
  const kind =
    error instanceof NotAuthenticated
      ? 'not logged in'
      : error instanceof StoreUnreachable
        ? 'unreachable'
        : error instanceof SecretNotFound
          ? 'not found'
          : error instanceof AccessDenied
            ? 'access denied'
            : undefined;
  return { ...fail(error.message, error.fix, kind ? { problem: kind } : undefined), exitCode: error.exitCode };
}
