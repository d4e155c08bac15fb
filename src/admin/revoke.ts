// `admin revoke`: offboarding. The gateway stops accepting the developer's keys first (that is what
// ends access): the stored key and every other key keybroker minted for them (a rotation's old key
// in its grace, a mint whose store write was lost), whatever the store holds or fails to hold. Then
// the store disables the secret (soft, recoverable) or deletes it (--purge). When the gateway part
// cannot be done the command fails, naming what to do by hand.
import { Interrupted, SecretNotFound, StoreUnreachable, UnusableKey, type KeybrokerError } from '../kernel/errors.ts';
import type { KeyIssuer } from '../gateway/key-issuer.ts';
import { newStepId } from './audit.ts';
import { formatDuration } from '../kernel/duration.ts';
import { parseSecretValue } from '../secret/value.ts';
import { errorLine, secretNameFor, type AdminDeps } from './common.ts';
import { limiterFor, pacedAt, runBulk, terminalProgress } from './bulk.ts';

export async function revokeKey(deps: AdminDeps, request: { user: string; purge: boolean }): Promise<void> {
  await revokeOne(deps, request.user, request.purge, true);
}

/** Offboards several developers, a bounded and adaptive number at a time; exact report on failure or interrupt. */
export async function revokeKeys(deps: AdminDeps, request: { users: string[]; purge: boolean }): Promise<void> {
  for (const user of request.users) secretNameFor(deps.profile.secret, user);
  // --json: the bulk summary for one developer too, so a script reads one shape.
  if (request.users.length === 1 && !deps.json) return revokeKey(deps, { user: request.users[0]!, purge: request.purge });
  const limiter = limiterFor(deps.bulk);
  const paced: AdminDeps = {
    ...deps,
    provider: limiter.provider(deps.provider, deps.bulk?.relay !== undefined),
    ...(deps.issuer ? { issuer: limiter.issuer(deps.issuer) } : {}),
  };
  const progress = terminalProgress(deps.output.stderr, 'revoke', deps.isTTY);
  const run = await runBulk(request.users, (user) => revokeOne(paced, user, request.purge, false), limiter, {
    ...(deps.bulk?.signal ? { signal: deps.bulk.signal } : {}),
    onProgress: (state) => progress.update(state),
  });
  progress.end();
  const revoked: string[] = [];
  const failed: { user: string; error: string }[] = [];
  const notStarted: string[] = [];
  for (const [index, status] of run.statuses.entries()) {
    const user = request.users[index]!;
    if (status.state === 'done') revoked.push(user);
    else if (status.state === 'failed') failed.push({ user, error: errorLine(status.error) });
    else notStarted.push(user);
  }
  const complete = failed.length === 0 && !run.interrupted;
  const left = [...failed.map((failure) => failure.user), ...notStarted];
  if (deps.json) {
    deps.output.stdout(
      `${JSON.stringify({
        action: request.purge ? 'purge' : 'revoke',
        complete,
        total: request.users.length,
        revoked: revoked.length,
        failed,
        notRevoked: left,
        interrupted: run.interrupted,
        elapsedMs: run.elapsedMs,
        throttles: limiter.state.throttles,
        pacedAt: pacedAt(limiter.state),
      })}\n`,
    );
  } else if (complete) {
    deps.output.stdout(
      `${request.purge ? 'deleted' : 'disabled'} ${revoked.length} secrets${deps.issuer ? ' and their keys at the gateway' : ''} in ${formatDuration(run.elapsedMs)}\n`,
    );
  }
  if (complete) return;
  for (const failure of failed) deps.output.stderr(`keybroker: revoke of ${failure.user} failed: ${failure.error}`);
  deps.output.stderr(`keybroker: revoked (${revoked.length}): ${revoked.join(', ') || 'none'}`);
  deps.output.stderr(`keybroker: not revoked (${left.length}): ${left.join(', ')}`);
  deps.output.stderr('keybroker: run the revoke again for those (a revoked developer revoked again is harmless)');
  if (run.interrupted)
    throw new Interrupted(`revoke interrupted: ${revoked.length} revoked, ${left.length} not`, 'the lists above say who');
  throw run.firstFailure!.error;
}

async function revokeOne(deps: AdminDeps, user: string, purge: boolean, speak: boolean): Promise<void> {
  const secret = secretNameFor(deps.profile.secret, user);
  const step = newStepId();
  let stored: StoredForRevoke;
  try {
    stored = await readForRevoke(deps, secret);
  } catch (error) {
    // Offboarding does not wait for the store: the gateway is asked for every keybroker key of theirs anyway.
    deps.audit.record({ action: purge ? 'purge' : 'revoke', user, secret, step, outcome: `failed: store read: ${errorLine(error)}` });
    stored = { exists: true, readFailed: true, unreadable: `the store could not be read: ${errorLine(error)}` };
  }
  const version = stored.version ? { version: stored.version } : {};
  deps.audit.record({
    action: purge ? 'purge' : 'revoke',
    user,
    secret,
    ...version,
    step,
    outcome: `intent: ${deps.issuer ? 'delete every keybroker key of this user at the gateway, then ' : ''}${purge ? 'delete' : 'disable'} the secret`,
  });

  // 1. The gateway: what ends access. Every key keybroker minted for them, whatever the store holds.
  const gateway = deps.issuer ? await endGatewayKeys(deps, deps.issuer, { user, secret, step, ...stored }) : { note: '' };

  // 2. The store: disabled (recoverable) or deleted; even when the gateway part failed, so no one fetches it again.
  const action = purge ? 'purge' : 'revoke';
  let outcome = purge ? 'deleted for good' : 'disabled (recoverable)';
  try {
    await deps.provider.revoke(secret, { purge });
  } catch (error) {
    // No secret at all (never stored, or the write of a rotation was lost): the gateway part was the whole job.
    if (!(error instanceof SecretNotFound && !stored.exists && deps.issuer && !gateway.leftLive)) {
      deps.audit.record({ action, user, secret, ...version, step, outcome: `failed: store: ${errorLine(error)}` });
      throw error;
    }
    outcome = 'no secret in the store (nothing to disable)';
  }
  deps.audit.record({ action, user, secret, ...version, step, outcome });
  if (gateway.leftLive) {
    deps.output.stderr(`keybroker: ${user}: secret "${secret}" ${outcome}, but the gateway key was not retired`);
    throw gateway.leftLive;
  }
  if (speak) deps.output.stdout(`${user}: secret "${secret}" ${outcome}${gateway.note}\n`);
}

interface StoredForRevoke {
  exists: boolean;
  version?: string;
  /** The stored key, when the value reads as one. */
  key?: string;
  /** Why the value does not read as a key. */
  unreadable?: string;
  /** The store itself could not be read. */
  readFailed?: true;
}

async function readForRevoke(deps: AdminDeps, secret: string): Promise<StoredForRevoke> {
  let stored: { value: string; version: string };
  try {
    stored = await deps.provider.readCurrent(secret);
  } catch (error) {
    if (error instanceof SecretNotFound) return { exists: false };
    throw error;
  }
  try {
    return { exists: true, version: stored.version, key: parseSecretValue(stored.value, deps.profile.field, `secret "${secret}"`).key };
  } catch (error) {
    if (!(error instanceof UnusableKey)) throw error;
    return { exists: true, version: stored.version, unreadable: error.message };
  }
}

/**
 * Deletes the stored key (it may have been put by hand) and every other key keybroker minted for
 * `user` (a rotation's old key in its grace, a mint whose store write was lost): one audit line
 * that counts them. A failure is returned, to be thrown once the store side is done.
 */
async function endGatewayKeys(
  deps: AdminDeps,
  issuer: KeyIssuer,
  target: StoredForRevoke & { user: string; secret: string; step: string },
): Promise<{ note: string; leftLive?: KeybrokerError }> {
  const { user, secret, step, key, unreadable } = target;
  const where = issuer.describe();
  const base = { action: 'revoke' as const, user, secret, ...(target.version ? { version: target.version } : {}), step, gateway: where };
  let storedDeleted = false;
  let minted: number;
  try {
    if (key !== undefined) storedDeleted = await issuer.revoke([key]);
    minted = await issuer.revokeUser(user);
  } catch (error) {
    deps.audit.record({
      ...base,
      outcome: `failed: deleting ${user}'s keys at the gateway failed (${errorLine(error)})${storedDeleted ? '; the stored key was deleted' : ''}`,
    });
    return {
      note: '',
      leftLive: new StoreUnreachable(
        `deleting ${user}'s keys at ${where} failed (${errorLine(error)}): ${user}'s gateway key${storedDeleted ? 's other than the stored one' : ''} may still work`,
        `run the same revoke again, or delete ${user}'s keys at the gateway by hand (LiteLLM: GET /key/list?user_id=${user}, then POST /key/delete with their tokens)`,
      ),
    };
  }
  const count = minted + (storedDeleted ? 1 : 0);
  const storedPart =
    key !== undefined
      ? storedDeleted
        ? 'the stored key'
        : 'the stored key was unknown there'
      : target.readFailed
        ? 'the store could not be read'
        : unreadable
          ? 'the stored value is unreadable'
          : 'no stored key';
  deps.audit.record({
    ...base,
    outcome: `${count} key${count === 1 ? '' : 's'} deleted at the gateway (${storedPart}; ${minted} ${key !== undefined ? 'other ' : ''}key${minted === 1 ? '' : 's'} keybroker minted for this user)`,
  });
  if (unreadable && count === 0) {
    return {
      note: '',
      leftLive: new UnusableKey(
        `the stored value of "${secret}" cannot be read as a key (${unreadable}), and ${where} holds no key keybroker minted for ${user}: a key put there another way may still work`,
        `check ${user}'s keys at the gateway and delete them by hand (LiteLLM: GET /key/list?user_id=${user}, then POST /key/delete)`,
      ),
    };
  }
  return {
    note: `; ${count} key${count === 1 ? '' : 's'} deleted at ${where}${storedDeleted ? ` (the stored one${minted ? ` and ${minted} more keybroker minted` : ''})` : ''}`,
  };
}
