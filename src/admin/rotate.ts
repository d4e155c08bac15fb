// `admin rotate`: a new key for one developer or all, in the order that never locks anyone out:
// mint (or take the given key) → write the new version → retire the old key (after the grace
// period at the gateway, or at once when asked).
import { formatDuration } from '../kernel/duration.ts';
import { KeybrokerError, UsageError } from '../kernel/errors.ts';
import type { MintedKey } from '../gateway/key-issuer.ts';
import { currentKey, secretNameFor, templatePrefix, userFromSecretName, writeKey, USER_LABEL, type AdminDeps, type WriteOutcome } from './common.ts';

export interface RotateRequest {
  users: string[];
  /** A key from stdin/--from-file (one user only); otherwise the gateway mints one. */
  key?: string;
  expiresAt?: Date;
  /** How long the gateway keeps accepting the old key; 0 retires it at once. */
  graceMs: number;
  dryRun: boolean;
}

/** Claude Code may keep a key this long after keybroker last served it (TTL, then once more). */
export function minimumSafeGraceMs(refreshAfterMs: number, callerTtlMs: number): number {
  return refreshAfterMs + 2 * callerTtlMs;
}

/** Every developer with a key under the profile's template, sorted; revoked ones left out. */
export async function allUsers(deps: Pick<AdminDeps, 'provider' | 'profile'>): Promise<string[]> {
  const users = new Set<string>();
  for await (const summary of deps.provider.list(templatePrefix(deps.profile.secret))) {
    if (!summary.enabled) continue;
    const user = userFromSecretName(deps.profile.secret, summary.name) ?? summary.labels[USER_LABEL];
    if (user) users.add(user);
  }
  return [...users].sort();
}

export async function rotateKeys(deps: AdminDeps, request: RotateRequest, callerTtlMs: number): Promise<WriteOutcome[]> {
  if (request.key !== undefined && request.users.length !== 1) {
    throw new UsageError('a key from stdin or --from-file can rotate one developer only', 'use --user NAME, or configure "keyIssuer" to mint a key per developer');
  }
  if (request.key === undefined && !deps.issuer) {
    throw new UsageError('no new key: none was given and no gateway key API is configured', 'pipe the new key on stdin or use --from-file, or add "keyIssuer" to the profile');
  }
  for (const user of request.users) secretNameFor(deps.profile.secret, user);
  const safeGrace = minimumSafeGraceMs(deps.profile.cache.refreshAfterMs, callerTtlMs);
  if (deps.issuer && request.key === undefined && request.graceMs > 0 && request.graceMs < safeGrace) {
    deps.output.stderr(
      `keybroker: warning: a grace period of ${formatDuration(request.graceMs)} is shorter than the ${formatDuration(safeGrace)} a developer may keep the old key (refresh interval + 2 × Claude Code's TTL): some will see one 401 and recover through it`,
    );
  }

  const done: WriteOutcome[] = [];
  for (const user of request.users) {
    try {
      const result = await rotateOne(deps, user, request);
      if (result) done.push(result);
    } catch (error) {
      if (request.users.length > 1) {
        const left = request.users.slice(request.users.indexOf(user));
        deps.output.stderr(`keybroker: rotation stopped at ${user}: ${error instanceof KeybrokerError ? error.line() : (error as Error).message}`);
        deps.output.stderr(`keybroker: rotated (${done.length}): ${done.map((outcome) => outcome.user).join(', ') || 'none'}`);
        deps.output.stderr(`keybroker: not rotated (${left.length}): ${left.join(', ')}`);
      }
      throw error;
    }
  }
  if (!request.dryRun && request.users.length > 1) deps.output.stdout(`rotated ${done.length} key${done.length === 1 ? '' : 's'}\n`);
  return done;
}

async function rotateOne(deps: AdminDeps, user: string, request: RotateRequest): Promise<WriteOutcome | undefined> {
  const secret = secretNameFor(deps.profile.secret, user);
  const old = await currentKey(deps, secret);
  const issuer = request.key === undefined ? deps.issuer : undefined;
  const grace = request.graceMs > 0 ? `after a grace period of ${formatDuration(request.graceMs)}` : 'at once';

  if (request.dryRun) {
    const steps = [
      issuer
        ? old && request.graceMs > 0
          ? `regenerate the key at ${issuer.describe()} (the old one stays valid ${formatDuration(request.graceMs)})`
          : `mint a new key at ${issuer.describe()}`
        : 'take the new key from the input',
      `write it as a new version of "${secret}"${old ? ` (now version ${old.version})` : ' (a new secret)'}`,
      issuer && old ? `retire the old key at the gateway ${grace}` : old ? 'leave the old key to the gateway (no key API configured)' : 'nothing to retire',
    ];
    deps.output.stdout(`${user}: ${steps.map((step, index) => `${index + 1}. ${step}`).join('; ')}\n`);
    return undefined;
  }

  // 1. Mint. With a grace period the gateway itself retires the old key when it ends.
  let minted: MintedKey;
  let retireOldNow = false;
  if (!issuer) {
    minted = { key: request.key! };
  } else if (old && request.graceMs > 0) {
    minted = (await issuer.regenerate(old.key, user, request.graceMs)) ?? (await issuer.mint(user));
  } else {
    minted = await issuer.mint(user);
    retireOldNow = old !== undefined;
  }

  // 2. Write: from here on every `get` that refreshes serves the new key.
  const expiresAt = request.expiresAt ?? minted.expiresAt;
  let result: WriteOutcome;
  try {
    result = await writeKey(deps, { user, key: minted.key, ...(expiresAt ? { expiresAt } : {}) }, 'rotate', issuer?.describe());
  } catch (error) {
    if (issuer) deps.output.stderr(`keybroker: ${user}: a new key was minted at ${issuer.describe()} but not stored; the old key still works: re-run the rotation`);
    throw error;
  }

  // 3. Retire the old key once the new one is where developers read it.
  let retired = '';
  if (issuer && retireOldNow && old && old.key !== minted.key) {
    const deleted = await issuer.revoke([old.key]);
    retired = deleted ? '; old key deleted at the gateway' : '; the old key was not one the gateway knows (nothing to delete there)';
    deps.audit.record({ action: 'revoke', user, secret, version: old.version, outcome: deleted ? 'old key deleted at the gateway' : 'old key unknown to the gateway', gateway: issuer.describe() });
  } else if (issuer && old && request.graceMs > 0) {
    retired = `; the gateway accepts the old key for ${formatDuration(request.graceMs)} more`;
  }
  deps.output.stdout(`${user}: rotated to version ${result.version} of "${secret}"${retired}\n`);
  return result;
}
