// Bulk admin actions at fleet scale: rows run a few at a time, as fast as the store and gateway
// allow and never more. The width grows by one per width's worth of successes and halves on a
// throttle (AIMD); a throttle also sets a call-rate ceiling at what the service was accepting
// (raised 5% a minute while nothing is throttled); a `--concurrency N` ceiling bounds the width.
// A failed row or an interrupt stops new rows; rows in flight finish, so the report is exact.
import { retryAfterMs as retryAfterOf, throttledError } from '../kernel/retry.ts';
import type { Provider } from '../../providers/provider.ts';
import type { KeyIssuer } from '../gateway/key-issuer.ts';

export interface BulkOptions {
  /** Rows in flight at most (`--concurrency`). */
  ceiling: number;
  /** Stops new rows (SIGINT/SIGTERM); rows in flight finish. */
  signal?: AbortSignal;
  /** Where the store's own retries report throttling (ProviderContext.onThrottle), to the running limiter. */
  relay?: ThrottleRelay;
}

/** Forwards throttling seen inside a provider's retry policy to the bulk action running now. */
export class ThrottleRelay {
  target: BulkLimiter | undefined;
  notify(waitMs: number): void {
    this.target?.throttled(waitMs);
  }
}

/** The limiter for one bulk action, wired to the provider's throttling reports. */
export function limiterFor(bulk: BulkOptions | undefined): BulkLimiter {
  const limiter = new BulkLimiter(bulk?.ceiling ?? DEFAULT_CONCURRENCY);
  if (bulk?.relay) bulk.relay.target = limiter;
  return limiter;
}

export const DEFAULT_CONCURRENCY = 16;
const START_WIDTH = 4;
/** One throttle per window halves the width; more in the same window are the same event. */
const DECREASE_WINDOW_MS = 1_000;
const PROBE_AFTER_MS = 60_000;
const MAX_THROTTLED_ATTEMPTS = 12;

export interface LimiterState {
  width: number;
  ceiling: number;
  /** Calls per second at most, once a throttle was seen. */
  rateCap: number | undefined;
  throttles: number;
  /** Until when new calls wait (a Retry-After), ms since the epoch. */
  pausedUntil: number;
}

export class BulkLimiter {
  readonly state: LimiterState;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private lastDecrease = -Infinity;
  private lastThrottle = -Infinity;
  private lastProbe = -Infinity;
  private successes = 0;
  private nextSlot = 0;
  /** Completion times of recent successful calls (for the rate the service accepts). */
  private readonly accepted: number[] = [];

  constructor(ceiling: number, clock: { now?: () => number; sleep?: (ms: number) => Promise<void> } = {}) {
    const top = Math.max(1, Math.floor(ceiling));
    this.state = { width: Math.min(START_WIDTH, top), ceiling: top, rateCap: undefined, throttles: 0, pausedUntil: 0 };
    this.now = clock.now ?? Date.now;
    this.sleep = clock.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /** The store or gateway said "too many": halve the width, cap the rate, wait as asked. */
  throttled(waitMs = 0): void {
    const now = this.now();
    this.state.throttles++;
    this.lastThrottle = now;
    this.state.pausedUntil = Math.max(this.state.pausedUntil, now + waitMs);
    if (now - this.lastDecrease < DECREASE_WINDOW_MS) return;
    this.lastDecrease = now;
    this.successes = 0;
    this.state.width = Math.max(1, Math.floor(this.state.width / 2));
    // The rate the service was accepting just now, a little under it from here on.
    const recent = this.accepted.filter((at) => now - at <= 2_000);
    if (recent.length < 4) return;
    const accepting = recent.length / Math.max(0.5, (now - recent[0]!) / 1_000);
    const cap = Math.max(1, accepting * 0.9);
    this.state.rateCap = this.state.rateCap === undefined ? cap : Math.max(1, Math.min(this.state.rateCap * 0.9, cap));
  }

  /** A row finished well: one more row in flight per width's worth of successes. */
  rowSucceeded(): void {
    if (++this.successes >= this.state.width && this.state.width < this.state.ceiling) {
      this.successes = 0;
      this.state.width++;
    }
  }

  /** One call to the store or gateway, paced under the learned rate, sent again while throttled. */
  async call<T>(send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      await this.slot();
      try {
        const result = await send();
        const now = this.now();
        this.accepted.push(now);
        while (this.accepted.length && now - this.accepted[0]! > 2_000) this.accepted.shift();
        return result;
      } catch (error) {
        const throttle = throttledError(error);
        if (!throttle || attempt >= MAX_THROTTLED_ATTEMPTS) throw error;
        const asked = retryAfterOf(error, this.now()) ?? 0;
        const backoff = Math.min(20_000, 250 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
        this.throttled(Math.max(asked, backoff));
      }
    }
  }

  private async slot(): Promise<void> {
    let now = this.now();
    if (this.state.rateCap !== undefined && now - this.lastThrottle > PROBE_AFTER_MS && now - this.lastProbe > PROBE_AFTER_MS) {
      this.lastProbe = now;
      this.state.rateCap *= 1.05;
    }
    if (this.state.pausedUntil > now) {
      await this.sleep(this.state.pausedUntil - now);
      now = this.now();
    }
    if (this.state.rateCap === undefined) return;
    const gap = 1_000 / this.state.rateCap;
    const at = Math.max(now, this.nextSlot);
    this.nextSlot = at + gap;
    if (at > now) await this.sleep(at - now);
  }

  /** The store with its per-secret calls through this limiter (its listing is one paged call). */
  provider(provider: Provider): Provider {
    return {
      ...provider,
      describe: () => provider.describe(),
      loginCommand: () => provider.loginCommand(),
      whoami: () => provider.whoami(),
      list: (prefix) => provider.list(prefix),
      readCurrent: (name) => this.call(() => provider.readCurrent(name)),
      write: (name, value, options) => this.call(() => provider.write(name, value, options)),
      revoke: (name, options) => this.call(() => provider.revoke(name, options)),
    };
  }

  /** The gateway's key API through this limiter. */
  issuer(issuer: KeyIssuer): KeyIssuer {
    return {
      describe: () => issuer.describe(),
      mint: (user) => this.call(() => issuer.mint(user)),
      retire: (key, graceMs) => this.call(() => issuer.retire(key, graceMs)),
      revoke: (keys) => this.call(() => issuer.revoke(keys)),
      revokeUser: (user) => this.call(() => issuer.revokeUser(user)),
    };
  }
}

export type RowStatus<R> = { state: 'done'; result: R } | { state: 'failed'; error: unknown } | { state: 'not started' };

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

  await new Promise<void>((resolve) => {
    const onAbort = () => {
      if (inFlight === 0) finish();
    };
    const finish = () => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    options.signal?.addEventListener('abort', onAbort);
    const pump = () => {
      while (!stopped() && next < rows.length && inFlight < limiter.state.width) {
        const index = next++;
        inFlight++;
        work(rows[index]!, index).then(
          (result) => {
            statuses[index] = { state: 'done', result };
            limiter.rowSucceeded();
          },
          (error: unknown) => {
            statuses[index] = { state: 'failed', error };
            firstFailure ??= { index, error };
          },
        ).finally(() => {
          inFlight--;
          done++;
          options.onProgress?.({ done, total: rows.length, elapsedMs: now() - started, limiter: limiter.state });
          if (inFlight === 0 && (stopped() || next >= rows.length)) finish();
          else pump();
        });
      }
      if (inFlight === 0 && (stopped() || next >= rows.length)) finish();
    };
    pump();
  });
  return { statuses, firstFailure, interrupted: options.signal?.aborted === true, elapsedMs: now() - started };
}

/** One readable line, replaced in place on a terminal: done/total, rate, ETA, throttle state. */
export function progressLine(progress: BulkProgress, label: string): string {
  const { done, total, elapsedMs, limiter } = progress;
  const width = 24;
  const filled = total ? Math.round((done / total) * width) : width;
  const rate = elapsedMs > 0 ? (done * 1_000) / elapsedMs : 0;
  const eta = rate > 0 && done < total ? `ETA ${formatSeconds((total - done) / rate)}` : done >= total ? 'done' : 'ETA -';
  const throttle = limiter.pausedUntil > Date.now()
    ? 'throttled: waiting'
    : limiter.rateCap !== undefined
      ? `throttled earlier: paced at ${limiter.rateCap.toFixed(0)} calls/s`
      : 'no throttling';
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}  ${rate.toFixed(1)}/s  ${eta}  ${limiter.width} at a time  ${throttle}`;
}

function formatSeconds(seconds: number): string {
  const whole = Math.ceil(seconds);
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/** Prints progress on a terminal at most every 200 ms, each line replacing the one before. */
export function terminalProgress(stderr: (line: string) => void, label: string, enabled: boolean): { update(progress: BulkProgress): void; end(progress?: BulkProgress): void } {
  let last = 0;
  let shown = false;
  let latest: BulkProgress | undefined;
  const draw = (progress: BulkProgress) => {
    stderr(`${shown ? '\x1b[1A\x1b[2K' : ''}${progressLine(progress, label)}`);
    shown = true;
  };
  return {
    update(progress) {
      latest = progress;
      if (!enabled) return;
      const now = Date.now();
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
