// Bulk admin actions at fleet scale: rows run a few at a time, as fast as the store and gateway
// allow and never more. The width (rows in flight) grows by one per width's worth of successes and
// halves on a throttle (AIMD), up to the `--concurrency N` ceiling. Each service (the store, the
// gateway's key API) has its own rate gate: every call to it, each retry included, takes a slot;
// a throttle pauses that service's calls for the wait asked and caps its rate at 0.85 of the calls
// it took in the second before the refused one (never at the rate it refused); the cap only goes down within a run
// (a probe back up is a refusal when the quota did not move). A failed row or an interrupt stops
// new rows; rows in flight finish, so the report is exact.
import { retryAfterMs as retryAfterOf, throttledError, type Pace } from '../kernel/retry.ts';
import type { Provider } from '../../providers/provider.ts';
import type { KeyIssuer } from '../gateway/key-issuer.ts';

export interface BulkOptions {
  /** Rows in flight at most (`--concurrency`). */
  ceiling: number;
  /** Store calls a second at most from the first call (`--max-rate`): the cap a throttle would set, set beforehand. */
  maxRate?: number;
  /** Stops new rows (SIGINT/SIGTERM); rows in flight finish. */
  signal?: AbortSignal;
  /** Present when the provider was opened with this relay's `pace` as its paceCall (and `notify` as onThrottle). */
  relay?: ThrottleRelay;
}

/**
 * The provider is opened before any bulk action starts: its paceCall and onThrottle go through
 * this, to the limiter of the action running now (straight through when none runs).
 */
export class ThrottleRelay {
  target: BulkLimiter | undefined;
  notify(waitMs: number): void {
    this.target?.store.throttled(waitMs);
  }
  readonly pace: Pace = (send) => (this.target ? this.target.store.call(send) : send());
}

/** The limiter for one bulk action, wired to the provider's calls. */
export function limiterFor(bulk: BulkOptions | undefined): BulkLimiter {
  const limiter = new BulkLimiter(bulk?.ceiling ?? DEFAULT_CONCURRENCY, {}, bulk?.maxRate);
  if (bulk?.relay) bulk.relay.target = limiter;
  return limiter;
}

export const DEFAULT_CONCURRENCY = 16;
const START_WIDTH = 4;
/** One throttle per window halves the width; more in the same window are the same event. */
const DECREASE_WINDOW_MS = 1_000;
/**
 * Quotas count calls over a second (a sliding window, or a bucket refilled per second). When a call
 * is refused, the calls sent in the second before it, all of which the service took (it is the
 * first refusal), are the rate it allows: that is what the cap is taken from. Answers are not a
 * measure of it: calls still in flight are missing from them (0.65 of the quota at 40/s, 50 ms
 * away, in bench:admin), and answers bunched by the round trip overstate it over a shorter span.
 */
const QUOTA_WINDOW_MS = 1_000;
const CAP_OF_ACCEPTED = 0.85;
const MAX_THROTTLED_ATTEMPTS = 12;

export interface GateState {
  /** Calls per second at most, once a throttle was seen: in any one second, and spaced evenly. */
  rateCap: number | undefined;
  throttles: number;
  /** Calls sent through this gate, each re-send included. */
  calls: number;
  /** Until when new calls wait (a Retry-After or back-off), ms since the epoch. */
  pausedUntil: number;
}

export interface LimiterState {
  width: number;
  ceiling: number;
  /** Throttling answers from any service. */
  throttles: number;
  store: GateState;
  gateway: GateState;
}

type Clock = { now: () => number; sleep: (ms: number) => Promise<void> };

/** One call sent to the service, in the order sent; `refused` once it answered "too many". */
interface Sent {
  at: number;
  order: number;
  refused: boolean;
}

/** One service's calls: paced under its learned rate, sent again while it throttles. */
export class RateGate {
  readonly state: GateState = { rateCap: undefined, throttles: 0, calls: 0, pausedUntil: 0 };
  private lastDecrease = -Infinity;
  private nextSlot = 0;
  /** The calls sent in the last quota window (and the one before it: a refusal looks back from its own send). */
  private readonly sent: Sent[] = [];

  private readonly clock: Clock;
  private readonly onThrottle: (at: number) => void;

  constructor(clock: Clock, onThrottle: (at: number) => void) {
    this.clock = clock;
    this.onThrottle = onThrottle;
  }

  /**
   * The service said "too many" to `refusedCall` (when the caller knows which; else to one sent now):
   * pause its calls as asked and cap its rate under the calls it took in the second before.
   */
  throttled(waitMs = 0, refusedCall?: Sent): void {
    const now = this.clock.now();
    this.state.throttles++;
    this.state.pausedUntil = Math.max(this.state.pausedUntil, now + waitMs);
    this.onThrottle(now);
    if (now - this.lastDecrease < DECREASE_WINDOW_MS) return;
    this.lastDecrease = now;
    // Refused calls are not counted: they are the rate the service does not take.
    const refused: Pick<Sent, 'at' | 'order'> = refusedCall ?? { at: now, order: this.state.calls };
    const taken = this.sent.filter(
      (call) =>
        !call.refused &&
        // Stryker disable next-line EqualityOperator: `<=` is equivalent: the call of equal order is the refused one (marked refused) or none
        call.order < refused.order &&
        refused.at - call.at <= QUOTA_WINDOW_MS,
    ).length;
    if (taken < 4) return;
    const cap = (taken * 1_000 * CAP_OF_ACCEPTED) / QUOTA_WINDOW_MS;
    this.state.rateCap = this.state.rateCap === undefined ? cap : Math.min(this.state.rateCap, cap);
  }

  /** One call: sent when a slot is free under the rate cap, sent again while throttled. */
  async call<T>(send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const call = await this.slot();
      try {
        return await send();
      } catch (error) {
        // A refusal for another reason (not found, denied) is still an answer.
        if (!throttledError(error)) throw error;
        call.refused = true;
        if (attempt >= MAX_THROTTLED_ATTEMPTS) throw error;
        const asked = retryAfterOf(error, this.clock.now()) ?? 0;
        // 250 ms × 2^attempt, at most 16 s, from half of it (jitter): throttled callers do not come back together.
        const backoff = 250 * 2 ** Math.min(attempt, 6) * (0.5 + Math.random() / 2);
        this.throttled(Math.max(asked, backoff), call);
      }
    }
  }

  /** Waits out a pause, then for a slot (under the cap in the last second, and 1/cap after the slot before), and takes it. */
  private async slot(): Promise<Sent> {
    for (;;) {
      const now = this.clock.now();
      while (this.sent.length && now - this.sent[0]!.at > 2 * QUOTA_WINDOW_MS) this.sent.shift();
      if (this.state.pausedUntil > now) {
        await this.clock.sleep(this.state.pausedUntil - now);
        continue;
      }
      // No cap yet: neither the window nor the spacing below holds a call back.
      const cap = this.state.rateCap ?? Infinity;
      // The quota's own window: after a burst, wait until enough of it is more than a second old.
      const inWindow = this.sent.filter((call) => !call.refused && call.at + QUOTA_WINDOW_MS > now);
      const allowed = Math.max(1, Math.floor((cap * QUOTA_WINDOW_MS) / 1_000));
      if (inWindow.length >= allowed) {
        await this.clock.sleep(inWindow[inWindow.length - allowed]!.at + QUOTA_WINDOW_MS - now);
        continue;
      }
      if (this.nextSlot > now) {
        await this.clock.sleep(this.nextSlot - now);
        continue;
      }
      this.nextSlot = now + 1_000 / cap;
      return this.take(now);
    }
  }

  private take(now: number): Sent {
    const call: Sent = { at: now, order: this.state.calls++, refused: false };
    this.sent.push(call);
    return call;
  }
}

export class BulkLimiter {
  readonly state: LimiterState;
  /** Every call to the store goes through this (the provider's paceCall, through the relay). */
  readonly store: RateGate;
  /** Every call to the gateway's key API, on its own rate. */
  readonly gateway: RateGate;
  private successes = 0;
  private lastDecrease = -Infinity;

  /** `maxStoreRate`: the store's calls a second at most from the first call (`--max-rate`). */
  constructor(ceiling: number, clock: { now?: () => number; sleep?: (ms: number) => Promise<void> } = {}, maxStoreRate?: number) {
    const top = Math.max(1, Math.floor(ceiling));
    const times: Clock = { now: clock.now ?? Date.now, sleep: clock.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))) };
    // A throttle from either service halves the width, once per window (the calls already in flight are refused together).
    const onThrottle = (at: number) => {
      this.state.throttles++;
      if (at - this.lastDecrease < DECREASE_WINDOW_MS) return;
      this.lastDecrease = at;
      this.successes = 0;
      this.state.width = Math.max(1, Math.floor(this.state.width / 2));
    };
    this.store = new RateGate(times, onThrottle);
    this.store.state.rateCap = maxStoreRate;
    this.gateway = new RateGate(times, onThrottle);
    this.state = { width: Math.min(START_WIDTH, top), ceiling: top, throttles: 0, store: this.store.state, gateway: this.gateway.state };
  }

  /** A row finished well: one more row in flight per width's worth of successes. */
  rowSucceeded(): void {
    if (++this.successes >= this.state.width && this.state.width < this.state.ceiling) {
      this.successes = 0;
      this.state.width++;
    }
  }

  /**
   * The store for this action. A provider opened with the relay paces each of its own calls (each
   * retry included) through `store`; one opened without it (a test's) is paced here per method.
   */
  provider(provider: Provider, pacedInside: boolean): Provider {
    const paced = <T>(send: () => Promise<T>) => (pacedInside ? send() : this.store.call(send));
    return {
      ...provider,
      describe: () => provider.describe(),
      loginCommand: () => provider.loginCommand(),
      whoami: () => provider.whoami(),
      list: (prefix) => provider.list(prefix),
      readCurrent: (name) => paced(() => provider.readCurrent(name)),
      write: (name, value, options) => paced(() => provider.write(name, value, options)),
      revoke: (name, options) => paced(() => provider.revoke(name, options)),
    };
  }

  /** The gateway's key API, each call (one HTTP request) through the gateway's own gate. */
  issuer(issuer: KeyIssuer): KeyIssuer {
    return {
      describe: () => issuer.describe(),
      mint: (user, alias) => this.gateway.call(() => issuer.mint(user, alias)),
      retire: (key, graceMs) => this.gateway.call(() => issuer.retire(key, graceMs)),
      revoke: (keys) => this.gateway.call(() => issuer.revoke(keys)),
      revokeUser: (user) => this.gateway.call(() => issuer.revokeUser(user)),
      revokeAlias: (user, alias) => this.gateway.call(() => issuer.revokeAlias(user, alias)),
    };
  }
}

/** The rates a run ended paced at, calls per second (null: never throttled), for the --json summary. */
export function pacedAt(state: LimiterState): { store: number | null; gateway: number | null } {
  const rate = (gate: GateState) => (gate.rateCap === undefined ? null : Math.round(gate.rateCap * 10) / 10);
  return { store: rate(state.store), gateway: rate(state.gateway) };
}

type RowStatus<R> = { state: 'done'; result: R } | { state: 'failed'; error: unknown } | { state: 'not started' };

export interface BulkRun<R> {
  statuses: RowStatus<R>[];
  /** The first failure (in completion order), or undefined. */
  firstFailure: { index: number; error: unknown } | undefined;
  interrupted: boolean;
  elapsedMs: number;
}

export interface BulkProgress {
  done: number;
  total: number;
  elapsedMs: number;
  limiter: LimiterState;
}

/**
 * Runs `work` over the rows, at most the limiter's width at a time. After a failure or an abort no
 * new row starts; the rows in flight finish, so every row is exactly done, failed or not started.
 */
export async function runBulk<T, R>(
  rows: readonly T[],
  work: (row: T, index: number) => Promise<R>,
  limiter: BulkLimiter,
  options: { signal?: AbortSignal; onProgress?(progress: BulkProgress): void; now?: () => number } = {},
): Promise<BulkRun<R>> {
  const now = options.now ?? Date.now;
  const started = now();
  const statuses: RowStatus<R>[] = rows.map(() => ({ state: 'not started' }));
  let next = 0;
  let inFlight = 0;
  let done = 0;
  let firstFailure: BulkRun<R>['firstFailure'];
  const stopped = () => firstFailure !== undefined || options.signal?.aborted === true;

  // An abort needs no listener: each row that settles starts the next only when not stopped, and the last one in flight ends the run.
  await new Promise<void>((finish) => {
    const pump = () => {
      while (!stopped() && next < rows.length && inFlight < limiter.state.width) {
        const index = next++;
        inFlight++;
        work(rows[index]!, index)
          .then(
            (result) => {
              statuses[index] = { state: 'done', result };
              limiter.rowSucceeded();
            },
            (error: unknown) => {
              statuses[index] = { state: 'failed', error };
              firstFailure ??= { index, error };
            },
          )
          .finally(() => {
            inFlight--;
            done++;
            options.onProgress?.({ done, total: rows.length, elapsedMs: now() - started, limiter: limiter.state });
            pump();
          });
      }
      // Nothing started and nothing in flight: stopped, or every row settled (the width is at least 1).
      if (inFlight === 0) finish();
    };
    pump();
  });
  return { statuses, firstFailure, interrupted: options.signal?.aborted === true, elapsedMs: now() - started };
}

/** One readable line, replaced in place on a terminal: done/total, rate, ETA, throttle state. */
export function progressLine(progress: BulkProgress, label: string, now = Date.now()): string {
  const { done, total, elapsedMs, limiter } = progress;
  const width = 24;
  const filled = total ? Math.round((done / total) * width) : width;
  const rate = elapsedMs > 0 ? (done * 1_000) / elapsedMs : 0;
  const eta = rate > 0 && done < total ? `ETA ${formatSeconds((total - done) / rate)}` : done >= total ? 'done' : 'ETA -';
  const gate = (name: string, state: GateState) =>
    state.pausedUntil > now
      ? `${name} throttled: waiting`
      : state.rateCap !== undefined
        ? `${name} paced at ${state.rateCap.toFixed(0)} calls/s`
        : undefined;
  const throttle = [gate('store', limiter.store), gate('gateway', limiter.gateway)].filter(Boolean).join(', ') || 'no throttling';
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}  ${rate.toFixed(1)}/s  ${eta}  ${limiter.width} at a time  ${throttle}`;
}

function formatSeconds(seconds: number): string {
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** Prints progress on a terminal at most every 200 ms (the first and the last at once), each line replacing the one before. */
export function terminalProgress(
  stderr: (line: string) => void,
  label: string,
  enabled: boolean,
  clock: () => number = Date.now,
): { update(progress: BulkProgress): void; end(progress?: BulkProgress): void } {
  let last = -Infinity;
  let shown = false;
  let latest: BulkProgress | undefined;
  const draw = (progress: BulkProgress) => {
    stderr(`${shown ? '\x1b[1A\x1b[2K' : ''}${progressLine(progress, label, clock())}`);
    shown = true;
  };
  return {
    update(progress) {
      latest = progress;
      if (!enabled) return;
      const now = clock();
      if (now - last < 200 && progress.done < progress.total) return;
      last = now;
      draw(progress);
    },
    end(progress) {
      const final = progress ?? latest;
      if (enabled && final) draw(final);
    },
  };
}
