// `admin rotate`: a new key for one developer or all, in the order that never locks anyone out and
// never leaves a key live at the gateway that the store does not hold: mint a new key (the old one
// untouched) → write the new version (on failure: delete the minted key) → retire the old key
// (its grace period starts now, or at once when asked).
import { formatDuration } from '../kernel/duration.ts';
import { Interrupted, UsageError } from '../kernel/errors.ts';
import { sha256Hex } from '../kernel/sha256.ts';
import type { MintedKey } from '../gateway/key-issuer.ts';
import { errorLine, readStored, secretNameFor, templatePrefix, userFromSecretName, writeKey, USER_LABEL, type AdminDeps, type WriteOutcome } from './common.ts';
import { limiterFor, pacedAt, runBulk, terminalProgress } from './bulk.ts';

export interface RotateRequest {
  /** The developers to rotate (with `all`, none: the store's listing says who). */
  users: string[];
  /** Every developer with a key under the profile's template (`--all`), listed through the action's limiter. */
  all?: boolean;
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

export interface RotateSummary {
  rotated: WriteOutcome[];
  failed: { user: string; error: string }[];
  notStarted: string[];
  interrupted: boolean;
  elapsedMs: number;
  throttles: number;
}

export async function rotateKeys(deps: AdminDeps, request: RotateRequest, callerTtlMs: number): Promise<WriteOutcome[]> {
  if (request.key === undefined && !deps.issuer) {
    throw new UsageError('no new key: none was given and no gateway key API is configured', 'pipe the new key on stdin or use --from-file, or add "keyIssuer" to the profile');
  }
  // Many developers: one limiter for the whole action. With --all the listing's calls come first
  // and count against the same quota as the rotations after them (a store paces them through it).
  // --json: the bulk path's summary for one developer too, so a script reads one shape.
  const limiter = request.all || request.users.length > 1 || (deps.json && !request.dryRun) ? limiterFor(deps.bulk) : undefined;
  const users = request.all ? await allUsers(deps) : request.users;
  if (request.key !== undefined && users.length !== 1) {
    throw new UsageError('a key from stdin or --from-file can rotate one developer only', 'use --user NAME, or configure "keyIssuer" to mint a key per developer');
  }
  for (const user of users) secretNameFor(deps.profile.secret, user);
  const safeGrace = minimumSafeGraceMs(deps.profile.cache.refreshAfterMs, callerTtlMs);
  if (deps.issuer && request.key === undefined && request.graceMs > 0 && request.graceMs < safeGrace) {
    deps.output.stderr(
      `keybroker: warning: a grace period of ${formatDuration(request.graceMs)} is shorter than the ${formatDuration(safeGrace)} a developer may keep the old key (refresh interval + 2 × Claude Code's TTL): some will see one 401 and recover through it`,
    );
  }
  if (request.dryRun && deps.json) {
    const plan = [];
    for (const user of users) plan.push({ user, steps: await dryRunSteps(deps, user, request) });
    deps.output.stdout(JSON.stringify({ action: 'rotate', dryRun: true, complete: true, total: users.length, rotated: 0, failed: [], notRotated: [], plan }) + '\n');
    return [];
  }
  if ((users.length <= 1 && !deps.json) || request.dryRun || !limiter) {
    const results: WriteOutcome[] = [];
    for (const user of users) {
      const result = await rotateOne(deps, user, request, true);
      if (result) results.push(result);
    }
    return results;
  }

  // Each row mint → write → retire, a bounded and adaptive number at a time.
  const paced: AdminDeps = { ...deps, provider: limiter.provider(deps.provider, deps.bulk?.relay !== undefined), ...(deps.issuer ? { issuer: limiter.issuer(deps.issuer) } : {}) };
  const progress = terminalProgress(deps.output.stderr, 'rotate', deps.isTTY);
  const run = await runBulk(users, (user) => rotateOne(paced, user, request, false), limiter, {
    ...(deps.bulk?.signal ? { signal: deps.bulk.signal } : {}),
    onProgress: (state) => progress.update(state),
  });
  progress.end();
  const summary: RotateSummary = { rotated: [], failed: [], notStarted: [], interrupted: run.interrupted, elapsedMs: run.elapsedMs, throttles: limiter.state.throttles };
  for (const [index, status] of run.statuses.entries()) {
    const user = users[index]!;
    if (status.state === 'done') {
      if (status.result) summary.rotated.push(status.result);
    } else if (status.state === 'failed') summary.failed.push({ user, error: errorLine(status.error) });
    else summary.notStarted.push(user);
  }
  const complete = !run.firstFailure && !run.interrupted;
  if (deps.json) {
    deps.output.stdout(
      JSON.stringify({
        action: 'rotate',
        complete,
        total: users.length,
        rotated: summary.rotated.length,
        failed: summary.failed,
        notRotated: [...summary.failed.map((failure) => failure.user), ...summary.notStarted],
        interrupted: run.interrupted,
        elapsedMs: run.elapsedMs,
        throttles: summary.throttles,
        pacedAt: pacedAt(limiter.state),
      }) + '\n',
    );
  } else if (complete) {
    deps.output.stdout(`rotated ${summary.rotated.length} key${summary.rotated.length === 1 ? '' : 's'} in ${formatDuration(run.elapsedMs)}${summary.throttles ? ` (throttled ${summary.throttles} times, slowed down)` : ''}\n`);
  }
  if (complete) return summary.rotated;
  const left = [...summary.failed.map((failure) => failure.user), ...summary.notStarted];
  for (const failure of summary.failed) deps.output.stderr(`keybroker: rotation of ${failure.user} failed: ${failure.error}`);
  deps.output.stderr(`keybroker: rotated (${summary.rotated.length}): ${summary.rotated.map((outcome) => outcome.user).join(', ') || 'none'}`);
  deps.output.stderr(`keybroker: not rotated (${left.length}): ${left.join(', ')}`);
  deps.output.stderr(`keybroker: rotate those again with --user, or re-run --all (that rotates everyone again)`);
  if (run.interrupted) throw new Interrupted(`rotation interrupted: ${summary.rotated.length} rotated, ${left.length} not`, 'the lists above say who; no key is live at the gateway that the store does not hold');
  throw run.firstFailure!.error;
}

/** LiteLLM's own id for a key (the SHA-256 of it, hex): what its UI and /key/delete accept, never the key. */
function gatewayToken(key: string): string {
  return sha256Hex(key);
}

/** What a rotation of `user` would do, step by step; reads the store, changes nothing. */
async function dryRunSteps(deps: AdminDeps, user: string, request: RotateRequest): Promise<string[]> {
  const secret = secretNameFor(deps.profile.secret, user);
  const old = (await readStored(deps, secret)).current;
  const issuer = request.key === undefined ? deps.issuer : undefined;
  const grace = request.graceMs > 0 ? `after a grace period of ${formatDuration(request.graceMs)}` : 'at once';
  return [
    issuer ? `mint a new key at ${issuer.describe()}` : 'take the new key from the input',
    `write it as a new version of "${secret}"${old ? ` (now version ${old.version})` : ' (a new secret)'}`,
    issuer && old ? `retire the old key at the gateway ${grace}` : old ? 'leave the old key to the gateway (no key API configured)' : 'nothing to retire',
  ];
}

async function rotateOne(deps: AdminDeps, user: string, request: RotateRequest, speak: boolean): Promise<WriteOutcome | undefined> {
  if (request.dryRun) {
    const steps = await dryRunSteps(deps, user, request);
    deps.output.stdout(`${user}: ${steps.map((step, index) => `${index + 1}. ${step}`).join('; ')}\n`);
    return undefined;
  }
  const secret = secretNameFor(deps.profile.secret, user);
  const stored = await readStored(deps, secret);
  const old = stored.current;
  const issuer = request.key === undefined ? deps.issuer : undefined;

  // 1. Mint a new key; the old one is untouched (no grace starts) until the new one is stored.
  const minted: MintedKey = issuer ? await issuer.mint(user) : { key: request.key! };

  // 2. Write: from here on every `get` that refreshes serves the new key.
  const expiresAt = request.expiresAt ?? minted.expiresAt;
  let result: WriteOutcome;
  try {
    result = await writeKey(deps, { user, key: minted.key, ...(expiresAt ? { expiresAt } : {}) }, 'rotate', { ...(issuer ? { gateway: issuer.describe() } : {}), stored });
  } catch (error) {
    if (!issuer) throw error;
    // The store does not hold the minted key: it must not stay live at the gateway.
    const where = issuer.describe();
    try {
      await issuer.revoke([minted.key]);
      deps.audit.record({ action: 'rotate', user, secret, outcome: 'rolled back: the store write failed; the minted key was deleted at the gateway; the old key is unchanged', gateway: where });
      deps.output.stderr(`keybroker: ${user}: writing the new key to "${secret}" failed, so the key just minted at ${where} was deleted there; the old key is unchanged and still works: fix the write (below) and re-run`);
    } catch (deleteError) {
      const token = gatewayToken(minted.key);
      deps.audit.record({ action: 'rotate', user, secret, outcome: `failed: the store write failed and deleting the minted key at the gateway failed too (${errorLine(deleteError)}); it is live and unstored: delete token ${token} by hand`, gateway: where });
      deps.output.stderr(`keybroker: ${user}: writing the new key to "${secret}" failed, and deleting the key just minted at ${where} failed too (${errorLine(deleteError)}): delete it by hand there (POST /key/delete {"keys": ["${token}"]}, its hashed token); the old key is unchanged`);
    }
    throw error;
  }

  // 3. Retire the old key now that the new one is where developers read it: the grace starts here.
  let retired = '';
  if (issuer && old && old.key !== minted.key) {
    let outcome: 'retired' | 'unknown';
    try {
      outcome = await issuer.retire(old.key, request.graceMs);
    } catch (error) {
      const token = gatewayToken(old.key);
      deps.audit.record({ action: 'rotate', user, secret, version: old.version, outcome: `partial: the new key is stored; retiring the old key at the gateway failed (${errorLine(error)}); it stays live until retired by hand (token ${token})`, gateway: issuer.describe() });
      deps.output.stderr(`keybroker: ${user}: the new key is stored (version ${result.version}), but retiring the old key at ${issuer.describe()} failed: it stays valid until you delete it there (POST /key/delete {"keys": ["${token}"]}, its hashed token)`);
      throw error;
    }
    const what = outcome === 'unknown' ? 'old key unknown to the gateway' : request.graceMs > 0 ? `old key expires at the gateway in ${formatDuration(request.graceMs)}` : 'old key deleted at the gateway';
    deps.audit.record({ action: 'revoke', user, secret, version: old.version, outcome: what, gateway: issuer.describe() });
    retired =
      outcome === 'unknown'
        ? '; the old key was not one the gateway knows (nothing to retire there)'
        : request.graceMs > 0
          ? `; the gateway accepts the old key for ${formatDuration(request.graceMs)} more`
          : '; old key deleted at the gateway';
  }
  if (speak) deps.output.stdout(`${user}: rotated to version ${result.version} of "${secret}"${retired}\n`);
  return result;
}
