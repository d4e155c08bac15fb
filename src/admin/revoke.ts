// `admin revoke`: offboarding. The gateway stops accepting the key first (that is what ends
// access), then the store disables the secret (soft, recoverable) or deletes it (--purge). When the
// stored value cannot be read as a key, the gateway is still asked to delete the developer's
// keybroker keys; when that cannot be done the command fails, naming what to do by hand.
import { Interrupted, SecretNotFound, UnusableKey } from '../kernel/errors.ts';
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
  const paced: AdminDeps = { ...deps, provider: limiter.provider(deps.provider, deps.bulk?.relay !== undefined), ...(deps.issuer ? { issuer: limiter.issuer(deps.issuer) } : {}) };
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
    deps.output.stdout(JSON.stringify({ action: request.purge ? 'purge' : 'revoke', complete, total: request.users.length, revoked: revoked.length, failed, notRevoked: left, interrupted: run.interrupted, elapsedMs: run.elapsedMs, throttles: limiter.state.throttles, pacedAt: pacedAt(limiter.state) }) + '\n');
  } else if (complete) {
    deps.output.stdout(`${request.purge ? 'deleted' : 'disabled'} ${revoked.length} secrets${deps.issuer ? ' and their keys at the gateway' : ''} in ${formatDuration(run.elapsedMs)}\n`);
  }
  if (complete) return;
  for (const failure of failed) deps.output.stderr(`keybroker: revoke of ${failure.user} failed: ${failure.error}`);
  deps.output.stderr(`keybroker: revoked (${revoked.length}): ${revoked.join(', ') || 'none'}`);
  deps.output.stderr(`keybroker: not revoked (${left.length}): ${left.join(', ')}`);
  deps.output.stderr('keybroker: run the revoke again for those (a revoked developer revoked again is harmless)');
  if (run.interrupted) throw new Interrupted(`revoke interrupted: ${revoked.length} revoked, ${left.length} not`, 'the lists above say who');
  throw run.firstFailure!.error;
}

async function revokeOne(deps: AdminDeps, user: string, purge: boolean, speak: boolean): Promise<void> {
  const secret = secretNameFor(deps.profile.secret, user);
  let stored: { value: string; version: string } | undefined;
  try {
    stored = await deps.provider.readCurrent(secret);
  } catch (error) {
    if (!(error instanceof SecretNotFound)) throw error;
  }
  let key: string | undefined;
  let unreadable: string | undefined;
  if (stored) {
    try {
      key = parseSecretValue(stored.value, deps.profile.field, `secret "${secret}"`).key;
    } catch (error) {
      if (!(error instanceof UnusableKey)) throw error;
      unreadable = error.message;
    }
  }
  const version = stored ? { version: stored.version } : {};

  // 1. The gateway: what ends access.
  let gatewayNote = '';
  let leftLive: UnusableKey | undefined;
  if (deps.issuer) {
    const where = deps.issuer.describe();
    if (key !== undefined) {
      const deleted = await deps.issuer.revoke([key]);
      deps.audit.record({ action: 'revoke', user, secret, ...version, outcome: deleted ? 'key deleted at the gateway' : 'key unknown to the gateway', gateway: where });
      gatewayNote = deleted ? `; key deleted at ${where}` : `; ${where} did not know the key`;
    } else if (stored) {
      // The value does not say which key is theirs: ask the gateway for the keys it holds for them.
      let count: number;
      try {
        count = await deps.issuer.revokeUser(user);
      } catch (error) {
        deps.audit.record({ action: 'revoke', user, secret, ...version, outcome: `failed: the stored value is unreadable and deleting ${user}'s keys at the gateway failed (${errorLine(error)})`, gateway: where });
        count = -1;
        leftLive = new UnusableKey(
          `the stored value of "${secret}" cannot be read as a key, and deleting ${user}'s keys at ${where} failed (${errorLine(error)}): ${user}'s gateway key may still work`,
          `delete ${user}'s keys at the gateway by hand (LiteLLM: GET /key/list?user_id=${user}, then POST /key/delete with their tokens)`,
        );
      }
      if (count === 0) {
        deps.audit.record({ action: 'revoke', user, secret, ...version, outcome: 'failed: the stored value is unreadable and the gateway holds no key keybroker minted for this user', gateway: where });
        leftLive = new UnusableKey(
          `the stored value of "${secret}" cannot be read as a key (${unreadable}), and ${where} holds no key keybroker minted for ${user}: a key put there another way may still work`,
          `check ${user}'s keys at the gateway and delete them by hand (LiteLLM: GET /key/list?user_id=${user}, then POST /key/delete)`,
        );
      } else if (count > 0) {
        deps.audit.record({ action: 'revoke', user, secret, ...version, outcome: `stored value unreadable; deleted the ${count} key${count === 1 ? '' : 's'} keybroker minted for this user at the gateway`, gateway: where });
        gatewayNote = `; the stored value was unreadable, so the ${count} key${count === 1 ? '' : 's'} keybroker minted for ${user} ${count === 1 ? 'was' : 'were'} deleted at ${where}`;
      }
    } else {
      gatewayNote = `; no stored key to delete at ${where}`;
    }
  }

  // 2. The store: disabled (recoverable) or deleted; even when the gateway part failed, so no one fetches it again.
  try {
    await deps.provider.revoke(secret, { purge });
  } catch (error) {
    deps.audit.record({ action: purge ? 'purge' : 'revoke', user, secret, ...version, outcome: `failed: store: ${errorLine(error)}` });
    throw error;
  }
  const outcome = purge ? 'deleted for good' : 'disabled (recoverable)';
  deps.audit.record({ action: purge ? 'purge' : 'revoke', user, secret, ...version, outcome });
  if (leftLive) {
    deps.output.stderr(`keybroker: ${user}: secret "${secret}" ${outcome}, but the gateway key was not retired`);
    throw leftLive;
  }
  if (speak) deps.output.stdout(`${user}: secret "${secret}" ${outcome}${gatewayNote}\n`);
}
