// Part src/broker/: the core of get: freshness, single flight, 401 recovery, refresh-ahead, status, login. May use: kernel, providers, secret, config, loader, cache, claude, gateway.
// The core of `get`: cache → (lock) → store → cache, written once. It takes its store, cache,
// clock, lock and memory of past calls as arguments, so every rule here is tested without I/O.
//
// The rules (also in the README):
// - Freshness. margin = 2 × callerTtl + 60 s. A cached key is `fresh` (served without the store)
//   while 0 ≤ age < refreshAfter and now < expires_at − margin. It is `expired` (never served)
//   from expires_at − 60 s on. In between, or with an age < 0 (the clock went back), it is
//   `stale`: re-read from the store, and served only when the store cannot answer.
//   Why 2 × TTL: Claude Code keeps a key for its TTL, then sends it once more while the helper
//   re-runs; one more TTL covers a re-run that fails. 60 s covers clock skew to the store.
// - 401. A caller (src/broker/caller.ts) that calls again less than callerTtl − tolerance after it was
//   handed the key the cache still holds has just been refused with a 401: the store is re-read
//   (single flight) instead of serving the cache. A newer key is served. The same key is checked
//   with the gateway when one is known: refused → KeyRejected ("revoked, no newer key"); else it
//   is served. One re-check per profile per 15 s: within that window a repeat gets the last
//   verdict (the key, or KeyRejected saying when the store was asked) without touching the store
//   or the gateway. An explicit re-check (`get --recheck`, `status --refresh`) always reads the store.
// - Store down, slow or throttled (StoreUnreachable), or answering with an unusable value
//   (UnusableKey, e.g. a SecretString that is a number): a cached key not yet `expired` is served
//   with one warning; with none, the error. A waiter for the lock whose holder failed gets that
//   failure instead of reading the store again, without taking the lock, so 50 callers fail (or
//   are served the cached key) together within one timeout.
// - Refresh-ahead. A fresh key older than 80 % of refreshAfter is served at once and a detached
//   process re-reads the store (at most one per profile per 30 s), so most callers never meet a
//   stale cache; the 100 % deadline above still holds for everyone.
// - SSO tokens (`oidc` profiles): the same rules with the token endpoint as the source
//   (fetchEntry, src/sso/) and a 10 s slack instead of 60 s. A refresh spends the refresh token,
//   so it runs only under the lock; a waiter that outlasts a slow refresh gets the unexpired cached
//   token with a warning, never a second refresh.
import { cacheSlot, entryBelongs } from '../cache/account.ts';
import type { Profile } from '../config/config.ts';
import {
  AccessDenied,
  CacheUnavailable,
  ConfigError,
  KeyRejected,
  KeybrokerError,
  NotAuthenticated,
  SecretNotFound,
  StoreUnreachable,
  UnusableKey,
  isTransientStoreFailure,
} from '../kernel/errors.ts';
import { checkKey, fingerprint, keyProblem, parseSecretValue } from '../secret/value.ts';
import { resolveSecretName } from '../secret/name.ts';
import { formatDuration } from '../kernel/duration.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import { parseEntry, serializeEntry, type CacheEntry } from '../cache/entry.ts';
import type { Lock } from './lock.ts';
import type { CallerIdentity } from './caller.ts';
import type { GatewayVerdict } from '../gateway/key-check.ts';
import type { RotationState, StoreFailureRecord } from './rotation-state.ts';
import type { Provider } from '../../providers/provider.ts';
import { storeCallCeilingMs } from '../kernel/retry.ts';
import { FILE_TIME_GRACE_MS, recordAgeMs } from '../kernel/record-age.ts';

export interface BrokerDeps {
  profile: Profile;
  cache: CacheStore;
  /** Opens the store; called only when the cache cannot answer, so the SDK loads only then. */
  openProvider(): Promise<Provider>;
  /**
   * Where a fresh entry comes from when it is not the profile's store: an `oidc` profile's token
   * endpoint (src/sso/). Cached the same way; absent: the store. Called only under the lock: it
   * spends a refresh token, so it never runs beside another process's refresh.
   */
  fetchEntry?: (() => Promise<CacheEntry>) | undefined;
  /** The clock slack of the freshness rule; default clockSlackFor(profile). */
  clockSlackMs?: number | undefined;
  lock: Lock;
  now(): number;
  /** A clock that is never set back (ms; default performance.now()): waits for the lock are measured on it. */
  monotonicNow?(): number;
  /**
   * How long this process took to start and reach `get` (ms). On a starved machine it measures how
   * slowly every process runs, the lock holder included; absent in tests without processes.
   */
  startupMs?: number;
  osUser(): string;
  /** Claude Code's own cache lifetime (CLAUDE_CODE_API_KEY_HELPER_TTL_MS). */
  callerTtlMs: number;
  /** The Claude Code process calling; undefined where it cannot be told (the 401 rule is then off). */
  caller: CallerIdentity | undefined;
  /** Who was served what, the last 401 re-check, the last store failure. */
  state: RotationState;
  /** Asks the gateway whether it takes a key; absent when no gateway is known. */
  checkWithGateway?: ((key: string) => Promise<GatewayVerdict>) | undefined;
  /** The gateway's address, for messages. */
  gatewayName?: string | undefined;
  /** Starts `refreshAhead` in a detached process that holds none of the caller's pipes; absent: no refresh-ahead. */
  startBackgroundRefresh?: (() => void) | undefined;
  warn(line: string): void;
  debug(message: string): void;
}

export type Served = CacheEntry & { from: 'cache' | 'store' | 'stale-cache' };

export interface GetOptions {
  /** Skip a fresh cached key and ask the store (the caller was just refused with a 401). */
  recheck?: boolean;
}

/** Fixed slack for clocks and for the time a request takes after the key was handed out. */
export const CLOCK_SLACK_MS = 60_000;
/**
 * The clock slack for access tokens of `oidc` profiles. They often live 5–60 minutes, some 60 s:
 * a minute of slack would retire a 60-second token at birth. 10 s covers NTP-synced clocks
 * between this machine and the gateway that checks `exp`.
 */
export const TOKEN_CLOCK_SLACK_MS = 10_000;

/** The freshness rule's clock slack for a profile's entries. */
export function clockSlackFor(profile: Profile): number {
  return profile.oidc ? TOKEN_CLOCK_SLACK_MS : CLOCK_SLACK_MS;
}

/** At most one 401 re-check of a profile's key in this long; repeats get its verdict. */
export const RECHECK_MIN_INTERVAL_MS = 15_000;

export type Freshness = 'fresh' | 'stale' | 'expired';

/** How long before expires_at a key stops being handed out fresh (see the rules above). */
export function expiryMarginMs(callerTtlMs: number, slackMs = CLOCK_SLACK_MS): number {
  return 2 * callerTtlMs + slackMs;
}

export function assessFreshness(
  entry: CacheEntry,
  now: number,
  refreshAfterMs: number,
  callerTtlMs: number,
  slackMs = CLOCK_SLACK_MS,
): Freshness {
  const expiresAt = entry.expiresAt ?? Number.POSITIVE_INFINITY;
  if (now >= expiresAt - slackMs) return 'expired';
  const age = now - entry.fetchedAt;
  // A fetch time in the future means the clock moved back: trust nothing about the age.
  if (age < 0 || age >= refreshAfterMs) return 'stale';
  if (now >= expiresAt - expiryMarginMs(callerTtlMs, slackMs)) return 'stale';
  return 'fresh';
}

/** The one freshness rule for a profile's cached entry, as get, status and doctor all judge it (SSO tokens: 10 s slack). */
export function profileFreshness(entry: CacheEntry, now: number, profile: Profile, callerTtlMs: number): Freshness {
  return assessFreshness(entry, now, profile.cache.refreshAfterMs, callerTtlMs, clockSlackFor(profile));
}

/** A repeat call this close to the TTL's end is Claude Code's regular re-run, not a 401. */
function repeatToleranceMs(callerTtlMs: number): number {
  return Math.min(5_000, callerTtlMs / 10);
}

/**
 * How long a `get` waits for another process's refresh: as long as that process's store call may
 * take in wall time on a busy machine (src/kernel/retry.ts; an oidc refresh makes two calls:
 * discovery, then the token), plus a second, plus the holder's own work around it (loading the
 * store's SDK, its first use: about HOLDER_WORK_STARTS process starts), at the pace this process
 * itself started. Giving up sooner on a live holder only starts a second read that the same
 * starved CPU makes no faster: 50 cold gets on a busy 2-core machine made 17 store reads that way.
 */
export function lockWaitMs(profile: Profile, startupMs: number): number {
  return storeCallCeilingMs((profile.oidc ? 2 : 1) * profile.timeoutMs) + 1_000 + HOLDER_WORK_STARTS * startupMs;
}
/**
 * A waiter's whole wait for the lock, in lockWaitMs: one for the holder it found, one more for a
 * holder that took over late (from a killed one); whatever the lock files' times say.
 */
export const LOCK_WAIT_MAX_WAITS = 2;
/** A cold get's work beyond a bare start, in process starts (docs/performance.md: 88.6 against 22.1 ms). */
const HOLDER_WORK_STARTS = 4;

/** From this share of refreshAfter on, a fresh key is served and refreshed in the background. */
const REFRESH_AHEAD_AT = 0.8;

/** True once a key read at `fetchedAt` is old enough to be refreshed in the background. */
function dueForRefreshAhead(entry: CacheEntry, now: number, refreshAfterMs: number): boolean {
  return now - entry.fetchedAt >= REFRESH_AHEAD_AT * refreshAfterMs;
}
/** At most one background refresh of a profile started in this long. */
export const REFRESH_AHEAD_EVERY_MS = 30_000;

/**
 * The first round of waiting for the lock before the cache is looked at again. Rounds then grow by
 * half up to LOCK_ROUND_MAX_MS: each round costs a waiter CPU, and 49 waiters polling at a fixed
 * pace burned most of a core, on a starved machine slowing the very holder they waited for.
 */
const LOCK_ROUND_MS = 100;
const LOCK_ROUND_MAX_MS = 500;

/** The profile's cached entry, when there is one read from the secret this user resolves to. */
export async function readCachedEntry(
  deps: Pick<BrokerDeps, 'cache' | 'profile' | 'osUser' | 'warn' | 'debug'>,
): Promise<CacheEntry | undefined> {
  const slot = cacheSlot(deps.profile, deps.osUser);
  let text: string | undefined;
  try {
    text = await deps.cache.read(slot.account);
  } catch (error) {
    if (!(error instanceof CacheUnavailable) || deps.cache.required) throw error;
    deps.warn(`keybroker: ${error.line()}`);
    return undefined;
  }
  if (text === undefined) return undefined;
  const entry = parseEntry(text);
  if (!entry) deps.debug('the cached entry is not readable; it will be replaced');
  // A key the output check (serve) would refuse is replaced from the store, not refused.
  else if (keyProblem(entry.key)) deps.debug('the cached key is not one Claude Code accepts; it will be replaced');
  else if (entryBelongs(slot, deps.profile, entry.secret)) return entry;
  else deps.debug(`the cached entry was read from secret "${entry.secret}", not this user's; it will be replaced`);
  return undefined;
}

/** The fingerprint of the key this caller was refused with, when its call looks like a 401 re-run. */
function suspectedRefusal(
  deps: Pick<BrokerDeps, 'caller' | 'state' | 'callerTtlMs'>,
  account: string,
  cached: CacheEntry | undefined,
  now: number,
): string | undefined {
  if (!deps.caller || !cached) return undefined;
  const served = deps.state.servedTo(account, deps.caller.id);
  if (!served) return undefined;
  const since = recordAgeMs(served.at, now);
  if (since === undefined || since >= deps.callerTtlMs - repeatToleranceMs(deps.callerTtlMs)) return undefined;
  // A caller that got an older key than the cache now holds just needs the cached one.
  return served.fingerprint === fingerprint(cached.key) ? served.fingerprint : undefined;
}

/** One `get` on its way through the phases below: what it was asked, and what the cache said when it began. */
interface GetCall {
  deps: BrokerDeps;
  options: GetOptions;
  account: string;
  /** deps.now() when the call began: an entry or a store failure from since then is as new as this call could get. */
  startedAt: number;
  /** What the cache held when the call began. */
  cached: CacheEntry | undefined;
  /** The fingerprint of the key the caller was just refused with (a 401 re-run, or --recheck); undefined for a plain get. */
  refused: string | undefined;
}

/** cache → (wait for a holder) → store → cache: the phases below, in this order. */
export async function getKey(deps: BrokerDeps, options: GetOptions = {}): Promise<Served> {
  const account = cacheSlot(deps.profile, deps.osUser).account;
  const startedAt = deps.now();
  const cached = await readCachedEntry(deps);
  const refused = options.recheck ? (cached ? fingerprint(cached.key) : undefined) : suspectedRefusal(deps, account, cached, startedAt);
  const call: GetCall = { deps, options, account, startedAt, cached, refused };
  const fromCache = answerFromCache(call);
  if (fromCache) return fromCache;
  const waitMs = lockWaitMs(deps.profile, deps.startupMs ?? 0);
  const waited = await waitForHolder(call, waitMs);
  if (waited.acceptable) return serve(call, waited.acceptable, 'cache');
  if (!waited.release && deps.fetchEntry) return besideSlowRefresh(call, waited.latest, waitMs);
  if (!waited.release && !failedMeanwhile(call)) deps.debug('did not get the refresh lock in time; reading the store without it');
  try {
    // Another caller refused with the same key may have re-checked while this one waited. Only under the
    // lock does the cache hold what that re-check found (its holder records the verdict, then writes the key).
    const answer = waited.release ? recentVerdict(call, refused, waited.latest) : undefined;
    return answer ?? (await answerFromStore(call, waited.latest));
  } finally {
    await waited.release?.();
  }
}

/** The one freshness rule, now, for an entry of the profile get serves. */
function freshnessNow(deps: Pick<BrokerDeps, 'profile' | 'now' | 'callerTtlMs' | 'clockSlackMs'>, entry: CacheEntry): Freshness {
  return assessFreshness(
    entry,
    deps.now(),
    deps.profile.cache.refreshAfterMs,
    deps.callerTtlMs,
    deps.clockSlackMs ?? clockSlackFor(deps.profile),
  );
}

/** Every key handed out passes here, whatever its source: the one check before stdout, and the memory of who got what. */
function serve(call: GetCall, entry: CacheEntry, from: Served['from']): Served {
  const { deps } = call;
  checkKey(entry.key, `secret "${entry.secret}"`);
  if (deps.caller)
    deps.state.recordServed(call.account, deps.caller.id, { fingerprint: fingerprint(entry.key), version: entry.version, at: deps.now() });
  return { ...entry, from };
}

/**
 * Phase 1, the cache: a fresh cached key for a caller that was not refused with it (starting a refresh-ahead when it is
 * due); for a refused caller, the verdict of a recent re-check of that key. Undefined: the cache cannot answer.
 */
function answerFromCache(call: GetCall): Served | undefined {
  const { deps, cached, refused } = call;
  if (refused === undefined) {
    if (!cached || freshnessNow(deps, cached) !== 'fresh') return undefined;
    maybeRefreshAhead(deps, call.account, cached);
    return serve(call, cached, 'cache');
  }
  deps.debug(`${deps.caller?.description ?? 'the caller'} asked again within its TTL: it was refused key ${refused}; re-checking`);
  return recentVerdict(call, refused, cached);
}

/**
 * Within RECHECK_MIN_INTERVAL_MS of a re-check of this key: its verdict, without the store, and
 * saying when the store was asked. Never for an explicit `--recheck` / `status --refresh`: the
 * rate limit is for Claude Code's automatic re-runs, and a person asking means the store changed.
 */
function recentVerdict(call: GetCall, refusedKey: string | undefined, entry: CacheEntry | undefined): Served | undefined {
  const { deps } = call;
  if (call.options.recheck) return undefined;
  // Stryker disable next-line ConditionalExpression: equivalent, a get refused nothing matches no re-check; this spares it reading the record
  if (refusedKey === undefined) return undefined;
  const last = deps.state.lastRecheck(call.account);
  const since = last ? recordAgeMs(last.at, deps.now()) : undefined;
  if (!last || last.fingerprint !== refusedKey || since === undefined || since >= RECHECK_MIN_INTERVAL_MS) return undefined;
  if (last.verdict === 'rejected') throw keyRejected(refusedKey, last.gateway ?? deps.gatewayName, since);
  if (!entry || freshnessNow(deps, entry) === 'expired') return undefined;
  deps.debug(`re-checked ${formatDuration(since)} ago (${last.verdict}); not asking the store again yet`);
  return serve(call, entry, 'cache');
}

/**
 * True for an entry this call may serve as it is (a waiter stops waiting when the cache holds one): a fresh one, or
 * one read since this call began even when born inside the margin (a token that lives shorter than 2 × TTL + slack),
 * so it is not read again per waiter; never the key the caller was refused with.
 */
function acceptable(call: GetCall, entry: CacheEntry | undefined): entry is CacheEntry {
  const { deps } = call;
  return (
    entry !== undefined &&
    (freshnessNow(deps, entry) === 'fresh' ||
      (entry.fetchedAt >= call.startedAt && entry.fetchedAt <= deps.now() && freshnessNow(deps, entry) === 'stale')) &&
    fingerprint(entry.key) !== call.refused
  );
}

/** A store failure recorded since this call started: shared with this call, not repeated. */
function sinceStart(call: GetCall, failure: StoreFailureRecord | undefined): StoreFailureRecord | undefined {
  // One stamped after now is from the future (clock stepped back, or planted): never shared.
  return failure && failure.at >= call.startedAt && recordAgeMs(failure.at, call.deps.now()) !== undefined ? failure : undefined;
}

/** Once the holder's store read failed, its failure answers every waiter at once: no lock is taken to hear it. */
function failedMeanwhile(call: GetCall): boolean {
  return sinceStart(call, call.deps.state.lastStoreFailure(call.account)) !== undefined;
}

/** The newest entry this call knows of that is not yet expired: what it serves when the store cannot answer. */
function unexpiredEntry(call: GetCall, latest: CacheEntry | undefined): CacheEntry | undefined {
  return [latest, call.cached].find((entry): entry is CacheEntry => entry !== undefined && freshnessNow(call.deps, entry) !== 'expired');
}

/**
 * Phase 2, waiting for a holder: waits for the refresh lock in rounds, looking at the cache between them: the holder's
 * result reaches every waiter at once instead of through 49 lock hand-overs. Ends with the lock (its release), with an
 * acceptable entry (no lock held), or without either: the holder failed, or the wait ran out. Each holder gets the
 * whole wait from when it took the lock (one that took over from a killed holder starts its work from the beginning),
 * never more than LOCK_WAIT_MAX_WAITS waits in all, measured on the monotonic clock.
 */
async function waitForHolder(
  call: GetCall,
  waitMs: number,
): Promise<{ release?: () => Promise<void>; latest?: CacheEntry; acceptable?: CacheEntry }> {
  const { deps, account } = call;
  const monotonic = deps.monotonicNow ?? (() => performance.now());
  const waitStarted = monotonic();
  let deadline = waitStarted + waitMs;
  let latest = call.cached;
  const giveUp = () => failedMeanwhile(call);
  for (let round = LOCK_ROUND_MS; ; round = Math.min(LOCK_ROUND_MAX_MS, round * 1.5)) {
    if (giveUp()) return { latest };
    let release = await deps.lock.acquire(account, round, giveUp);
    // Taken in the moment the holder failed and let go: given back at once, not held while serving.
    if (release && giveUp()) {
      await release();
      release = undefined;
    }
    if (release) deps.debug('took the refresh lock');
    // Another process may have refreshed (or failed to) while this one waited; the cache already
    // said what it had to say, so it is read quietly here.
    // Stryker disable next-line ArrowFunction: equivalent, () => undefined is as quiet as () => {}
    latest = (await readCachedEntry({ ...deps, warn: () => {}, debug: () => {} })) ?? latest;
    if (acceptable(call, latest)) {
      await release?.();
      return { acceptable: latest };
    }
    if (release) return { release, latest };
    if (giveUp()) return { latest };
    // A lock stamped in the future (the clock went back) says nothing of its holder: no extra wait.
    const heldSince = await deps.lock.heldSince?.(account);
    const heldFor = heldSince === undefined ? undefined : recordAgeMs(heldSince, deps.now(), FILE_TIME_GRACE_MS);
    if (heldFor !== undefined)
      deadline = Math.min(waitStarted + LOCK_WAIT_MAX_WAITS * waitMs, Math.max(deadline, monotonic() - heldFor + waitMs));
    if (monotonic() >= deadline) return { latest };
  }
}

/**
 * An SSO waiter that outlasted another process's refresh: the unexpired cached token with a warning, or
 * StoreUnreachable. A second refresh beside a slow one would present a spent refresh token (the IdP may then end the session).
 */
function besideSlowRefresh(call: GetCall, latest: CacheEntry | undefined, waitMs: number): Served {
  const { deps } = call;
  const usable = unexpiredEntry(call, latest);
  const slow = new StoreUnreachable(
    `another keybroker is still refreshing the token of profile "${deps.profile.name}" after ${formatDuration(waitMs)}`,
    'try again; if it persists, run keybroker doctor',
  );
  if (!usable) throw slow;
  deps.warn(`keybroker: ${slow.message}; serving the cached token read ${formatDuration(deps.now() - usable.fetchedAt)} ago`);
  return serve(call, usable, 'stale-cache');
}

/**
 * Phase 3, the store: reads it and classifies the answer. A key is re-checked against a refusal (phase 4), refused
 * when expired, cached and served. A failure the store may get over (down, slow, an unusable value) serves the newest
 * cached key not yet expired, with one warning; any other failure, or nothing cached, is the error.
 */
async function answerFromStore(call: GetCall, latest: CacheEntry | undefined): Promise<Served> {
  const { deps } = call;
  const usable = unexpiredEntry(call, latest);
  let entry: CacheEntry;
  try {
    entry = await readStoreOrShareFailure(call);
  } catch (error) {
    if (!usable || !isTransientStoreFailure(error)) throw error;
    deps.warn(`keybroker: ${(error as Error).message}; serving the cached key ${readAgo(deps.now() - usable.fetchedAt)}`);
    return serve(call, usable, 'stale-cache');
  }
  if (call.refused !== undefined) await verifyRefusal(deps, call.account, call.refused, entry);
  if (freshnessNow(deps, entry) === 'expired') {
    throw new UnusableKey(
      `the key in secret "${entry.secret}" expired at ${new Date(entry.expiresAt!).toISOString()} (or expires within a minute)`,
      'ask your admin to rotate it (keybroker admin rotate)',
    );
  }
  try {
    await deps.cache.write(call.account, serializeEntry(entry));
  } catch (error) {
    if (!(error instanceof CacheUnavailable) || deps.cache.required) throw error;
    deps.warn(`keybroker: the key was not cached: ${error.line()}`);
  }
  return serve(call, entry, 'store');
}

/**
 * The store's entry, read by this call; or the failure another process met reading it since this call began, raised
 * again without asking. A failure met here is recorded for the waiters; a success clears an earlier one.
 */
async function readStoreOrShareFailure(call: GetCall): Promise<CacheEntry> {
  const { deps, account } = call;
  const lastFailure = deps.state.lastStoreFailure(account);
  const shared = sinceStart(call, lastFailure);
  if (shared) {
    deps.debug(`another process's store read failed ${formatDuration(deps.now() - shared.at)} ago: sharing its failure`);
    throw revive(shared);
  }
  try {
    const entry = await fetchFromStore(deps);
    if (lastFailure) deps.state.recordStoreFailure(account, undefined);
    return entry;
  } catch (error) {
    if (error instanceof KeybrokerError)
      deps.state.recordStoreFailure(account, { at: deps.now(), kind: error.name, message: error.message, fix: error.fix });
    throw error;
  }
}

/**
 * Phase 4, a refusal verified (the 401 path): a newer key in the store is the answer ('newer'); the refused key itself
 * is put to the gateway when one is known: rejected → KeyRejected ("revoked, no newer key"), else it is served ('same').
 * The verdict is recorded either way, so repeats within RECHECK_MIN_INTERVAL_MS get it without the store.
 */
export async function verifyRefusal(
  deps: Pick<BrokerDeps, 'now' | 'state' | 'checkWithGateway' | 'gatewayName' | 'debug'>,
  account: string,
  refused: string,
  entry: CacheEntry,
): Promise<void> {
  const now = deps.now();
  const current = fingerprint(entry.key);
  if (current !== refused) {
    deps.debug(`the store holds a newer key (${current}, version ${entry.version})`);
    deps.state.recordRecheck(account, { at: now, fingerprint: refused, verdict: 'newer' });
    return;
  }
  const verdict = deps.checkWithGateway ? await deps.checkWithGateway(entry.key) : 'unknown';
  deps.debug(`the store still holds key ${current}; the gateway says: ${verdict}`);
  const record = { at: now, fingerprint: refused, verdict: verdict === 'rejected' ? ('rejected' as const) : ('same' as const) };
  deps.state.recordRecheck(account, deps.gatewayName ? { ...record, gateway: deps.gatewayName } : record);
  if (verdict === 'rejected') throw keyRejected(refused, deps.gatewayName);
}

function maybeRefreshAhead(deps: BrokerDeps, account: string, entry: CacheEntry): void {
  if (!deps.startBackgroundRefresh) return;
  const now = deps.now();
  if (!dueForRefreshAhead(entry, now, deps.profile.cache.refreshAfterMs)) return;
  const last = deps.state.lastRefreshAhead(account);
  const sinceLast = last === undefined ? undefined : recordAgeMs(last, now);
  if (sinceLast !== undefined && sinceLast < REFRESH_AHEAD_EVERY_MS) return;
  deps.state.recordRefreshAhead(account, now);
  deps.debug('the cached key is nearing refreshAfter: refreshing it in the background');
  try {
    deps.startBackgroundRefresh();
  } catch (error) {
    deps.debug(`could not start the background refresh: ${(error as Error).message}`);
  }
}

/**
 * The background half of refresh-ahead: re-reads the store into the cache unless another
 * process holds the refresh lock or already refreshed. Prints nothing; errors stay here.
 */
export async function refreshAhead(deps: BrokerDeps): Promise<'refreshed' | 'not needed' | 'failed'> {
  const account = cacheSlot(deps.profile, deps.osUser).account;
  const release = await deps.lock.acquire(account, 0);
  if (!release) return 'not needed';
  try {
    const cached = await readCachedEntry(deps);
    if (cached && cached.fetchedAt <= deps.now() && !dueForRefreshAhead(cached, deps.now(), deps.profile.cache.refreshAfterMs))
      return 'not needed';
    const entry = await fetchFromStore(deps);
    if (freshnessNow(deps, entry) === 'expired') return 'failed';
    await deps.cache.write(account, serializeEntry(entry));
    return 'refreshed';
  } catch (error) {
    deps.debug(`background refresh failed: ${(error as Error).message}`);
    return 'failed';
  } finally {
    await release();
  }
}

/** When a cached key was read, for a message; a read "in the future" means the clock went back. */
export function readAgo(ageMs: number): string {
  return ageMs < 0 ? 'read at a time still ahead of this clock (the clock was set back)' : `read ${formatDuration(ageMs)} ago`;
}

/** `askedAgoMs`: how long ago the store was asked, when it was not asked in this call. */
function keyRejected(fingerprintText: string, gateway: string | undefined, askedAgoMs?: number): KeyRejected {
  const store =
    askedAgoMs === undefined ? 'the store holds no newer one' : `the store held no newer one when asked ${formatDuration(askedAgoMs)} ago`;
  return new KeyRejected(
    `the gateway${gateway ? ` at ${gateway}` : ''} rejects your key (${fingerprintText}) and ${store}: it was revoked`,
    askedAgoMs === undefined
      ? 'ask your admin to rotate your key (keybroker admin rotate); Claude Code picks up the new one by itself'
      : "ask your admin to rotate your key (keybroker admin rotate); if they just did, run 'keybroker get --recheck'",
  );
}

const REVIVABLE: Record<string, new (what: string, fix: string) => KeybrokerError> = {
  StoreUnreachable,
  NotAuthenticated,
  AccessDenied,
  SecretNotFound,
  UnusableKey,
  ConfigError,
};

/** The error another process just met reading the store, raised again here. */
function revive(record: StoreFailureRecord): KeybrokerError {
  const Kind = REVIVABLE[record.kind] ?? StoreUnreachable;
  return new Kind(record.message, record.fix);
}

export async function fetchFromStore(
  deps: Pick<BrokerDeps, 'profile' | 'openProvider' | 'osUser' | 'now' | 'fetchEntry'>,
): Promise<CacheEntry> {
  if (deps.fetchEntry) return deps.fetchEntry();
  const { profile } = deps;
  const provider = await deps.openProvider();
  const user = profile.user === 'store' ? (await provider.whoami()).user : deps.osUser();
  const secret = resolveSecretName(
    profile.secret,
    user,
    profile.user === 'store' ? `the store identity (${provider.describe()})` : 'the OS login',
  );
  const current = await provider.readCurrent(secret);
  const parsed = parseSecretValue(current.value, profile.field, `secret "${secret}"`);
  const expiries = [parsed.expiresAt?.getTime(), current.expiresAt?.getTime()].filter((time): time is number => time !== undefined);
  const entry: CacheEntry = { key: parsed.key, version: current.version, secret, fetchedAt: deps.now() };
  if (expiries.length) entry.expiresAt = Math.min(...expiries);
  return entry;
}
