// `admin rotate`: a new key for one developer or all, in the order that never locks anyone out and
// never leaves a key live at the gateway that the store does not hold: mint a new key (the old one
// untouched) → write the new version (on failure: delete the minted key) → retire the old key
// (its grace period starts now, or at once when asked).
import { formatDuration } from '../kernel/duration.ts';
import { Interrupted, StoreUnreachable, UsageError } from '../kernel/errors.ts';
import { MINT_INTENT, resumeRotations } from './resume.ts';
import { mintAlias, type KeyIssuer, type MintedKey } from '../gateway/key-issuer.ts';
import { newStepId } from './audit.ts';
import {
  errorLine,
  gatewayToken,
  readStored,
  secretNameFor,
  templatePrefix,
  userFromSecretName,
  writeKey,
  UnsettledWrite,
  USER_LABEL,
  type AdminDeps,
  type StoredKey,
  type WriteOutcome,
} from './common.ts';
import { limiterFor, pacedAt, runBulk, terminalProgress, type BulkLimiter, type BulkRun } from './bulk.ts';

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
  /** Finish the rotations the audit log says were started and not settled (all of them when no user is named). */
  resume?: boolean;
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

interface RotateSummary {
  rotated: WriteOutcome[];
  failed: { user: string; error: string }[];
  notStarted: string[];
  interrupted: boolean;
  elapsedMs: number;
  throttles: number;
}

export async function rotateKeys(deps: AdminDeps, request: RotateRequest, callerTtlMs: number): Promise<WriteOutcome[]> {
  if (request.resume && !request.all && request.users.length === 0) {
    await resumeRotations(deps);
    return [];
  }
  requireNewKeySource(deps, request);
  // Many developers: one limiter for the whole action. With --all the listing's calls come first
  // and count against the same quota as the rotations after them (a store paces them through it).
  // --json: the bulk path's summary for one developer too, so a script reads one shape.
  const limiter = request.all || request.users.length > 1 || (deps.json && !request.dryRun) ? limiterFor(deps.bulk) : undefined;
  const users = request.all ? await allUsers(deps) : request.users;
  checkUsers(deps, request, users);
  // A rotation a crash left half-done is finished first, so this one starts from what the store holds.
  if (request.resume || (deps.audit.history && deps.issuer && request.key === undefined && !request.dryRun))
    await resumeRotations(deps, new Set(users));
  warnOfShortGrace(deps, request, callerTtlMs);
  if (request.dryRun && deps.json) {
    await printJsonPlan(deps, request, users);
    return [];
  }
  if ((users.length <= 1 && !deps.json) || request.dryRun || !limiter) return rotateInTurn(deps, request, users);
  return rotateInBulk({ deps, request, users, limiter });
}

/** A new key comes from the input or from the gateway's key API: refused before anything is read when neither is there. */
function requireNewKeySource(deps: AdminDeps, request: RotateRequest): void {
  if (request.key === undefined && !deps.issuer) {
    throw new UsageError(
      'no new key: none was given and no gateway key API is configured',
      'pipe the new key on stdin or use --from-file, or add "keyIssuer" to the profile',
    );
  }
}

/** One given key for one developer only, and every developer's secret name valid, before any rotation starts. */
function checkUsers(deps: AdminDeps, request: RotateRequest, users: string[]): void {
  if (request.key !== undefined && users.length !== 1) {
    throw new UsageError(
      'a key from stdin or --from-file can rotate one developer only',
      'use --user NAME, or configure "keyIssuer" to mint a key per developer',
    );
  }
  for (const user of users) secretNameFor(deps.profile.secret, user);
}

/** A grace shorter than a developer may keep the old key costs some of them one 401: said, not refused. */
function warnOfShortGrace(deps: AdminDeps, request: RotateRequest, callerTtlMs: number): void {
  const safeGrace = minimumSafeGraceMs(deps.profile.cache.refreshAfterMs, callerTtlMs);
  if (deps.issuer && request.key === undefined && request.graceMs > 0 && request.graceMs < safeGrace) {
    deps.output.stderr(
      `keybroker: warning: a grace period of ${formatDuration(request.graceMs)} is shorter than the ${formatDuration(safeGrace)} a developer may keep the old key (refresh interval + 2 × Claude Code's TTL): some will see one 401 and recover through it`,
    );
  }
}

/** --dry-run --json: every developer's steps, in the bulk summary's shape. */
async function printJsonPlan(deps: AdminDeps, request: RotateRequest, users: string[]): Promise<void> {
  const plan = [];
  for (const user of users) plan.push({ user, steps: await dryRunSteps(deps, user, request) });
  deps.output.stdout(
    `${JSON.stringify({
      action: 'rotate',
      dryRun: true,
      complete: true,
      total: users.length,
      rotated: 0,
      failed: [],
      notRotated: [],
      plan,
    })}\n`,
  );
}

/** One developer after another, each saying what it did (one developer, or a dry run). */
async function rotateInTurn(deps: AdminDeps, request: RotateRequest, users: string[]): Promise<WriteOutcome[]> {
  const results: WriteOutcome[] = [];
  for (const user of users) {
    const result = await rotateOne(deps, user, request, true);
    if (result) results.push(result);
  }
  return results;
}

/** What a rotation of many developers works with. */
interface BulkRotation {
  deps: AdminDeps;
  request: RotateRequest;
  users: string[];
  limiter: BulkLimiter;
}

/** Each row mint → write → retire, a bounded and adaptive number at a time; then the summary, and the error when not complete. */
async function rotateInBulk(rotation: BulkRotation): Promise<WriteOutcome[]> {
  const { deps, request, users, limiter } = rotation;
  const paced: AdminDeps = {
    ...deps,
    provider: limiter.provider(deps.provider, deps.bulk?.relay !== undefined),
    ...(deps.issuer ? { issuer: limiter.issuer(deps.issuer) } : {}),
  };
  const progress = terminalProgress(deps.output.stderr, 'rotate', deps.isTTY);
  const run = await runBulk(users, (user) => rotateOne(paced, user, request, false), limiter, {
    ...(deps.bulk?.signal ? { signal: deps.bulk.signal } : {}),
    onProgress: (state) => progress.update(state),
  });
  progress.end();
  const summary = summaryOf(run, users, limiter.state.throttles);
  const complete = !run.firstFailure && !run.interrupted;
  if (deps.json) printJsonSummary(rotation, summary, complete);
  else if (complete) printDone(deps, summary);
  if (complete) return summary.rotated;
  return failIncomplete(deps, summary, run);
}

/** Each developer as rotated, failed (with its error line) or not started. */
function summaryOf(run: BulkRun<WriteOutcome | undefined>, users: string[], throttles: number): RotateSummary {
  const summary: RotateSummary = {
    rotated: [],
    failed: [],
    notStarted: [],
    interrupted: run.interrupted,
    elapsedMs: run.elapsedMs,
    throttles,
  };
  for (const [index, status] of run.statuses.entries()) {
    const user = users[index]!;
    if (status.state === 'done') {
      if (status.result) summary.rotated.push(status.result);
    } else if (status.state === 'failed') summary.failed.push({ user, error: errorLine(status.error) });
    else summary.notStarted.push(user);
  }
  return summary;
}

/** Those failed and those not started: the developers to rotate again. */
function notRotated(summary: RotateSummary): string[] {
  return [...summary.failed.map((failure) => failure.user), ...summary.notStarted];
}

/** --json: one object a script reads, whether the run completed or not. */
function printJsonSummary(rotation: BulkRotation, summary: RotateSummary, complete: boolean): void {
  rotation.deps.output.stdout(
    `${JSON.stringify({
      action: 'rotate',
      complete,
      total: rotation.users.length,
      rotated: summary.rotated.length,
      failed: summary.failed,
      notRotated: notRotated(summary),
      interrupted: summary.interrupted,
      elapsedMs: summary.elapsedMs,
      throttles: summary.throttles,
      pacedAt: pacedAt(rotation.limiter.state),
    })}\n`,
  );
}

function printDone(deps: AdminDeps, summary: RotateSummary): void {
  const count = summary.rotated.length;
  deps.output.stdout(
    `rotated ${count} key${count === 1 ? '' : 's'} in ${formatDuration(summary.elapsedMs)}${summary.throttles ? ` (throttled ${summary.throttles} times, slowed down)` : ''}\n`,
  );
}

/** Says who was rotated and who was not (and how to finish), then throws the interrupt or the first failure. */
function failIncomplete(deps: AdminDeps, summary: RotateSummary, run: BulkRun<WriteOutcome | undefined>): never {
  const left = notRotated(summary);
  for (const failure of summary.failed) deps.output.stderr(`keybroker: rotation of ${failure.user} failed: ${failure.error}`);
  deps.output.stderr(
    `keybroker: rotated (${summary.rotated.length}): ${summary.rotated.map((outcome) => outcome.user).join(', ') || 'none'}`,
  );
  deps.output.stderr(`keybroker: not rotated (${left.length}): ${left.join(', ')}`);
  deps.output.stderr(`keybroker: rotate those again with --user, or re-run --all (that rotates everyone again)`);
  if (run.interrupted)
    throw new Interrupted(
      `rotation interrupted: ${summary.rotated.length} rotated, ${left.length} not`,
      'the lists above say who; no key is live at the gateway that the store does not hold',
    );
  throw run.firstFailure!.error;
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
    issuer && old
      ? `retire the old key at the gateway ${grace}`
      : old
        ? 'leave the old key to the gateway (no key API configured)'
        : 'nothing to retire',
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

  // Every line of this rotation carries `step`; the first one (before the mint) says what a crash would leave.
  const step: RotationStep = {
    user,
    secret,
    step: newStepId(),
    ...(old ? { oldToken: gatewayToken(old.key) } : {}),
    graceMs: request.graceMs,
  };
  // 1. Mint a new key; the old one is untouched (no grace starts) until the new one is stored.
  const minted: MintedKey = issuer ? await mintAudited(deps, issuer, step) : { key: request.key! };
  const token = gatewayToken(minted.key);

  // 2. Write: from here on every `get` that refreshes serves the new key.
  const expiresAt = request.expiresAt ?? minted.expiresAt;
  let result: WriteOutcome;
  try {
    result = await writeKey(deps, { user, key: minted.key, ...(expiresAt ? { expiresAt } : {}) }, 'rotate', {
      ...(issuer ? { gateway: issuer.describe(), token } : {}),
      step: step.step,
      stored,
    });
  } catch (error) {
    if (issuer) await compensateWrite(deps, issuer, step, minted.key, error);
    throw error;
  }

  // 3. Retire the old key now that the new one is where developers read it: the grace starts here.
  const retired = issuer && old && old.key !== minted.key ? await retireOld(deps, issuer, step, old, request.graceMs, result.version) : '';
  if (speak) deps.output.stdout(`${user}: rotated to version ${result.version} of "${secret}"${retired}\n`);
  return result;
}

/** What every line of one developer's rotation carries. */
interface RotationStep {
  user: string;
  secret: string;
  step: string;
  oldToken?: string;
  graceMs: number;
}

/**
 * Audits the intent (alias included) before asking the gateway; when the answer is lost (timeout,
 * reset, 5xx) the gateway may have made the key: it is looked up by its alias and deleted.
 */
async function mintAudited(deps: AdminDeps, issuer: KeyIssuer, step: RotationStep): Promise<MintedKey> {
  const where = issuer.describe();
  const alias = mintAlias(step.user, deps.now());
  const line = { action: 'rotate' as const, user: step.user, secret: step.secret, step: step.step, gateway: where };
  deps.audit.record({ ...line, alias, ...(step.oldToken ? { oldToken: step.oldToken } : {}), graceMs: step.graceMs, outcome: MINT_INTENT });
  try {
    return await issuer.mint(step.user, alias);
  } catch (error) {
    if (!(error instanceof StoreUnreachable)) {
      deps.audit.record({ ...line, alias, settled: true, outcome: `failed: mint: ${errorLine(error)}` });
      throw error;
    }
    let found: number;
    try {
      found = await issuer.revokeAlias(step.user, alias);
    } catch (lookupError) {
      deps.audit.record({
        ...line,
        alias,
        outcome: `unsettled: mint: ${errorLine(error)}; finding the key by its alias failed too (${errorLine(lookupError)})`,
      });
      deps.output.stderr(
        `keybroker: ${step.user}: ${where} did not answer the mint and could not be asked whether it made the key (alias ${alias}): run 'keybroker admin rotate --resume' with this --audit-log, or 'admin revoke --user ${step.user}' to offboard`,
      );
      throw error;
    }
    const what = found ? 'the gateway had made the key: deleted by its alias' : 'the gateway holds no key under its alias';
    deps.audit.record({ ...line, alias, settled: true, outcome: `failed: mint: ${errorLine(error)}; ${what}` });
    throw error;
  }
}

/**
 * The store write failed. Refused: the store does not hold the minted key, so it is deleted.
 * Unsettled (the write may still land): the minted key stays live, so nobody is locked out, and
 * the log says what --resume must settle.
 */
async function compensateWrite(deps: AdminDeps, issuer: KeyIssuer, step: RotationStep, mintedKey: string, error: unknown): Promise<void> {
  const where = issuer.describe();
  const token = gatewayToken(mintedKey);
  const line = { action: 'rotate' as const, user: step.user, secret: step.secret, step: step.step, gateway: where, token };
  if (error instanceof UnsettledWrite) {
    deps.audit.record({
      ...line,
      outcome:
        'unsettled: the store may still apply the write; the minted key stays live and the old key unchanged until --resume settles it',
    });
    const next = deps.audit.history
      ? "run 'keybroker admin rotate --resume' with the same --audit-log once the store answers"
      : `once the store answers, the key it does not hold must be deleted at the gateway by hand (new key token ${token}${step.oldToken ? `, old key token ${step.oldToken}` : ''}); with no --audit-log there is nothing to resume from`;
    deps.output.stderr(
      `keybroker: ${step.user}: the store did not confirm writing the new key to "${step.secret}"; the key just minted at ${where} is kept (the store may still apply the write) and the old key is unchanged: ${next}`,
    );
    return;
  }
  try {
    await issuer.revoke([mintedKey]);
    deps.audit.record({
      ...line,
      settled: true,
      outcome: 'rolled back: the store refused the write; the minted key was deleted at the gateway; the old key is unchanged',
    });
    deps.output.stderr(
      `keybroker: ${step.user}: writing the new key to "${step.secret}" failed, so the key just minted at ${where} was deleted there; the old key is unchanged and still works: fix the write (below) and re-run`,
    );
  } catch (deleteError) {
    deps.audit.record({
      ...line,
      outcome: `failed: the store write failed and deleting the minted key at the gateway failed too (${errorLine(deleteError)}); it is live and unstored: delete token ${token} by hand`,
    });
    deps.output.stderr(
      `keybroker: ${step.user}: writing the new key to "${step.secret}" failed, and deleting the key just minted at ${where} failed too (${errorLine(deleteError)}): delete it by hand there (POST /key/delete {"keys": ["${token}"]}, its hashed token); the old key is unchanged`,
    );
  }
}

/** Retires the replaced key (its intent is the mint's line: oldToken and grace); the outcome line settles the step. */
async function retireOld(
  deps: AdminDeps,
  issuer: KeyIssuer,
  step: RotationStep,
  old: StoredKey,
  graceMs: number,
  version: string,
): Promise<string> {
  const where = issuer.describe();
  const line = { user: step.user, secret: step.secret, version: old.version, step: step.step, gateway: where };
  let outcome: 'retired' | 'unknown';
  try {
    outcome = await issuer.retire(old.key, graceMs);
  } catch (error) {
    const token = gatewayToken(old.key);
    deps.audit.record({
      action: 'rotate',
      ...line,
      oldToken: token,
      outcome: `partial: the new key is stored; retiring the old key at the gateway failed (${errorLine(error)}); it stays live until --resume or a retire by hand (token ${token})`,
    });
    deps.output.stderr(
      `keybroker: ${step.user}: the new key is stored (version ${version}), but retiring the old key at ${where} failed: it stays valid until 'keybroker admin rotate --resume' (with this --audit-log) or you delete it there (POST /key/delete {"keys": ["${token}"]}, its hashed token)`,
    );
    throw error;
  }
  const what =
    outcome === 'unknown'
      ? 'old key unknown to the gateway'
      : graceMs > 0
        ? `old key expires at the gateway in ${formatDuration(graceMs)}`
        : 'old key deleted at the gateway';
  deps.audit.record({ action: 'revoke', ...line, settled: true, outcome: what });
  if (outcome === 'unknown') return '; the old key was not one the gateway knows (nothing to retire there)';
  return graceMs > 0 ? `; the gateway accepts the old key for ${formatDuration(graceMs)} more` : '; old key deleted at the gateway';
}
