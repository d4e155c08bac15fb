// One bounded retry policy for every store: a few attempts inside the call's whole time budget,
// waiting as long as the store asks when it throttles (AWS ThrottlingException, HTTP 429 with
// Retry-After, gRPC RESOURCE_EXHAUSTED) and backing off with jitter on transient failures.
//
// The budget is the store's time: time this process could not run (it waited for a CPU on a
// starved machine, or was busy with the SDK's first use: compiling, credential chain, signing) is
// not counted against the store, up to a hard ceiling in wall time (see storeClock).
//
// How a provider uses it (providers/aws.ts does):
//   return withStoreRetry((signal) => client.send(command, { abortSignal: signal }), { budgetMs: context.timeoutMs });
// Turn the SDK's own retries off (AWS maxAttempts: 1, Azure retryOptions.maxRetries: 0, GCP
// `retry: null` per call) so one policy bounds the total time; Vault's calls go over node:http,
// which never retries, under one operationDeadline. Then map the final error to a KeybrokerError.

export interface RetryOptions {
  /** The whole call, attempts and waits included, ends within this much of the store's time. */
  budgetMs: number;
  /** Ends the call after this much wall time even if the process was starved all along; default storeCallCeilingMs(budgetMs). */
  ceilingMs?: number;
  /** Attempts at most (the first one included). */
  attempts?: number;
  /** First back-off for transient failures; doubles per attempt, with full jitter. */
  baseDelayMs?: number;
  /** No single wait is longer than this; a store that asks for a longer one is not retried. */
  maxDelayMs?: number;
  /** Says which errors are worth another attempt; defaults to `classifyStoreError`. */
  classify?(error: unknown): RetryClass;
  now?(): number;
  sleep?(ms: number): Promise<void>;
  /** Runs `callback` after `ms` (the budget's clock ticks); tests give a fake clock's. */
  setTimer?(callback: () => void, ms: number): { cancel(): void };
  random?(): number;
  /** Told before each wait (for debug traces). */
  onRetry?(info: { attempt: number; waitMs: number; reason: RetryClass }): void;
  /**
   * Runs each attempt when a bulk admin action's limiter gives it a slot (ProviderContext.paceCall),
   * and sends a throttled one again itself. Its waits are the client's, not the store's: they count
   * neither against the budget nor the ceiling; only the time inside `send` does.
   */
  pace?: Pace;
}

/** Sends `send` when the service's rate allows, again while it is throttled; see RetryOptions.pace. */
export type Pace = <T>(send: () => Promise<T>) => Promise<T>;

export type RetryClass = 'throttled' | 'transient' | 'final';

export const STORE_RETRY_DEFAULTS = { attempts: 4, baseDelayMs: 150, maxDelayMs: 2_000 } as const;

/**
 * The longest a store call takes in wall time, starved or not: its budget and half again. With
 * the default 5 s timeout a store that is really down fails a `get` within 7.5 s, inside Claude
 * Code's 10 s warning, while a starved machine's own slowness is not blamed on the store.
 */
export function storeCallCeilingMs(budgetMs: number): number {
  return Math.round(budgetMs * 1.5);
}

/** How often the budget's clock looks at the time; a look that comes late shows the process could not run. */
const CLOCK_TICK_MS = 50;
/**
 * Lateness up to this is a sleeping process's ordinary wake-up delay (measured: p99 under 30 ms
 * at a load of 60 on 2 cores), not a stall: it stays the store's time, so an idle wait for a store
 * that is down ends at the budget even on a busy machine.
 */
const WAKE_UP_SLACK_MS = 30;

/** The call's budget ran out (before an attempt, or while one ignored its signal); providers map it as a timeout. */
export class RetryBudgetExceeded extends Error {
  override name = 'TimeoutError';
}

interface StoreClock {
  /** The store's time so far: wall time since the start, less the time this process could not run or was held. */
  elapsed(): number;
  /** From now until release(), the time is the client's own (a pacing wait): the budget and the ceiling stop. */
  hold(): void;
  release(): void;
  /** Aborted with RetryBudgetExceeded once the budget or the ceiling is spent. */
  signal: AbortSignal;
  spent: Promise<never>;
  stop(): void;
}

/**
 * A clock for the store's time. It ticks every CLOCK_TICK_MS; a tick that fires late means the
 * event loop did not turn for that long (the process waited for a CPU, or ran its own code, such
 * as the SDK's first use), and that time is not the store's. A store answer that arrived while
 * the process was starved is read before the budget is judged, instead of a late timer blaming
 * the store for it. The ceiling is plain wall time, so the call ends whatever happens.
 */
function storeClock(budgetMs: number, ceilingMs: number, now: () => number, setTimer: NonNullable<RetryOptions['setTimer']>): StoreClock {
  const controller = new AbortController();
  const started = now();
  let starved = 0;
  let held = 0;
  let holdingSince: number | undefined;
  let lastTick = started;
  let timer: { cancel(): void } | undefined;
  let fail: (error: RetryBudgetExceeded) => void = () => {};
  const spent = new Promise<never>((_, reject) => (fail = reject));
  // Stryker disable next-line CallExpression: equivalent, withStoreRetry's Promise.race always handles it; this guards the clock alone
  spent.catch(() => {});
  // Stryker disable next-line ArithmeticOperator: equivalent, a tick during a hold finds the store's time frozen under the budget either way
  const heldSoFar = (at: number) => held + (holdingSince === undefined ? 0 : at - holdingSince);
  const elapsed = () => now() - started - starved - heldSoFar(now());
  const tick = () => {
    const at = now();
    const late = at - lastTick - CLOCK_TICK_MS;
    // Lateness while held is already off the store's time.
    if (late > WAKE_UP_SLACK_MS && holdingSince === undefined) starved += late;
    lastTick = at;
    const wall = at - started - heldSoFar(at);
    if (elapsed() >= budgetMs || wall >= ceilingMs) {
      const reason = new RetryBudgetExceeded(
        elapsed() >= budgetMs
          ? `no answer within ${budgetMs} ms`
          : `no answer within ${budgetMs} ms (${Math.round(wall)} ms in all on a busy machine)`,
      );
      controller.abort(reason);
      fail(reason);
      return;
    }
    timer = setTimer(tick, CLOCK_TICK_MS);
  };
  timer = setTimer(tick, CLOCK_TICK_MS);
  return {
    elapsed,
    hold: () => {
      holdingSince ??= now();
    },
    release: () => {
      // Stryker disable next-line ConditionalExpression: equivalent, pacedAttempt always pairs release with a hold before it
      if (holdingSince === undefined) return;
      held += now() - holdingSince;
      holdingSince = undefined;
    },
    signal: controller.signal,
    spent,
    // Stryker disable next-line OptionalChaining: equivalent, the timer is set before the clock is returned
    stop: () => timer?.cancel(),
  };
}

/**
 * The deadline of one operation made of several store calls (Vault: a token lookup, then the read),
 * `budgetMs` of the store's time. Time a bulk action's limiter holds a call back (its pace) is the
 * client's own, as within one call's retries: it moves the deadline on. The timer never keeps the
 * process alive.
 */
export interface OperationDeadline {
  /** Aborted with RetryBudgetExceeded once the store's time is spent. */
  readonly signal: AbortSignal;
  /** The store's time left, ms (at least 1): the budget for the next call's retries. */
  remainingMs(): number;
  /** `pace` with its waits held off this deadline; undefined when there is no pace. */
  readonly pace: Pace | undefined;
}

export function operationDeadline(budgetMs: number, pace?: Pace, now: () => number = Date.now): OperationDeadline {
  const controller = new AbortController();
  const started = now();
  let held = 0;
  let holding = 0;
  let holdingSince = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const remaining = () => started + budgetMs + held + (holding > 0 ? now() - holdingSince : 0) - now();
  const arm = () => {
    // Stryker disable next-line CallExpression: equivalent, a timer left over fires arm, which sets the same deadline again
    clearTimeout(timer);
    // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, hold clears the timer (arm never runs held) and a second abort is no abort
    if (holding > 0 || controller.signal.aborted) return;
    const left = remaining();
    if (left <= 0) return controller.abort(new RetryBudgetExceeded(`no answer within ${budgetMs} ms`));
    timer = setTimeout(arm, left);
    // Stryker disable next-line OptionalChaining,CallExpression: equivalent in-process, only whether the timer keeps a finished process alive
    timer.unref?.();
  };
  const hold = () => {
    if (holding++ > 0) return;
    holdingSince = now();
    // Stryker disable next-line CallExpression: equivalent, a timer that fires while held finds holding > 0 and returns
    clearTimeout(timer);
  };
  const release = () => {
    if (--holding > 0) return;
    held += now() - holdingSince;
    arm();
  };
  arm();
  const heldPace: Pace | undefined =
    pace &&
    (async (send) => {
      hold();
      try {
        return await pace(async () => {
          release();
          try {
            return await send();
          } finally {
            hold();
          }
        });
      } finally {
        release();
      }
    });
  return { signal: controller.signal, remainingMs: () => Math.max(1, remaining()), pace: heldPace };
}

function realTimer(callback: () => void, ms: number): { cancel(): void } {
  const handle = setTimeout(callback, ms);
  return { cancel: () => clearTimeout(handle) };
}

/** One attempt: `remainingMs` is what is left of the store's budget (an SDK that takes its own timeout gets that). */
export type Attempt<T> = (signal: AbortSignal, attemptNumber: number, remainingMs: number) => Promise<T>;

export async function withStoreRetry<T>(attempt: Attempt<T>, options: RetryOptions): Promise<T> {
  const clock = storeClock(
    options.budgetMs,
    options.ceilingMs ?? storeCallCeilingMs(options.budgetMs),
    options.now ?? Date.now,
    options.setTimer ?? realTimer,
  );
  const refused: { throttled?: unknown } = {};
  try {
    // An attempt that ignores its signal (the `az` process, a token refresh) still ends the call in time.
    return await Promise.race([attemptWithinBudget(attempt, options, clock, refused), clock.spent]);
  } catch (error) {
    // Out of time (this budget or the caller's) while the store was throttling: its refusal, not the
    // timeout, says what to do (wait).
    throw refused.throttled !== undefined && (clock.signal.aborted || isAbort(error)) ? refused.throttled : error;
  } finally {
    clock.stop();
  }
}

/** The attempt, through the pace when there is one: the clock is held except while `send` runs. */
async function pacedAttempt<T>(
  attempt: Attempt<T>,
  pace: Pace | undefined,
  clock: StoreClock,
  budgetMs: number,
  number: number,
): Promise<T> {
  if (!pace) return attempt(clock.signal, number, budgetMs - clock.elapsed());
  clock.hold();
  try {
    return await pace(async () => {
      clock.release();
      try {
        // Stryker disable next-line CallExpression: equivalent, neither the budget nor the ceiling moves while the pace holds the call
        clock.signal.throwIfAborted();
        return await attempt(clock.signal, number, budgetMs - clock.elapsed());
      } finally {
        clock.hold();
      }
    });
  } finally {
    clock.release();
  }
}

async function attemptWithinBudget<T>(
  attempt: Attempt<T>,
  options: RetryOptions,
  clock: StoreClock,
  refused: { throttled?: unknown },
): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const classify = options.classify ?? classifyStoreError;
  const attempts = options.attempts ?? STORE_RETRY_DEFAULTS.attempts;
  const base = options.baseDelayMs ?? STORE_RETRY_DEFAULTS.baseDelayMs;
  const cap = options.maxDelayMs ?? STORE_RETRY_DEFAULTS.maxDelayMs;
  for (let number = 1; ; number++) {
    if (clock.signal.aborted) throw clock.signal.reason;
    try {
      return await pacedAttempt(attempt, options.pace, clock, options.budgetMs, number);
    } catch (error) {
      const reason = classify(error);
      if (reason === 'throttled') refused.throttled = error;
      if (reason === 'final' || number >= attempts) throw error;
      const asked = reason === 'throttled' ? retryAfterMs(error, now()) : undefined;
      // Sooner than the store asked only earns another refusal: then the answer is "throttled" now.
      // Stryker disable next-line ConditionalExpression: equivalent, undefined > cap is false
      if (asked !== undefined && asked > cap) throw error;
      const backoff = Math.round(random() * Math.min(cap, base * 2 ** (number - 1)));
      // A throttling answer waits at least `base`, even when Retry-After (whole seconds, truncated) says 0.
      const waitMs = Math.min(cap, Math.max(asked ?? backoff, reason === 'throttled' ? base : 0));
      // A wait that would leave no time for the next attempt only delays the failure.
      if (clock.elapsed() + waitMs >= options.budgetMs - 50) throw error;
      options.onRetry?.({ attempt: number, waitMs, reason });
      await sleep(waitMs);
    }
  }
}

type Loose = {
  name?: unknown;
  code?: unknown;
  status?: unknown;
  statusCode?: unknown;
  $metadata?: { httpStatusCode?: number };
  $response?: { headers?: Record<string, string | undefined> };
  response?: { status?: number; statusCode?: number; headers?: unknown };
  headers?: unknown;
  metadata?: { get?(key: string): unknown[] };
  statusDetails?: unknown[];
  message?: unknown;
};

const THROTTLING_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'TooManyRequests',
]);
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_UNAVAILABLE = 14;
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'EAI_AGAIN', 'ETIMEDOUT', 'UND_ERR_SOCKET']);

function httpStatusOf(error: unknown): number | undefined {
  const err = error as Loose | undefined;
  // Stryker disable next-line ConditionalExpression,LogicalOperator: equivalent, classifyStoreError passes only objects
  if (!err || typeof err !== 'object') return undefined;
  for (const value of [err.$metadata?.httpStatusCode, err.statusCode, err.status, err.response?.status, err.response?.statusCode]) {
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
  }
  return undefined;
}

/** For calls that are not idempotent (a new version, a create): only a throttled one, which the store did not act on, is sent again. */
export function throttlingOnly(error: unknown): RetryClass {
  return classifyStoreError(error) === 'throttled' ? 'throttled' : 'final';
}

/** The class of a store error, from any of the four SDKs or a plain HTTP client. */
export function classifyStoreError(error: unknown): RetryClass {
  const err = error as Loose | undefined;
  // Stryker disable next-line ConditionalExpression: equivalent, a string or number has no code, name or status and ends 'final' below
  if (!err || typeof err !== 'object') return 'final';
  // The AWS SDK names a reset socket "TimeoutError" with code ECONNRESET: look at the code first.
  // Stryker disable next-line ConditionalExpression: equivalent, the set holds only strings
  if (typeof err.code === 'string' && TRANSIENT_CODES.has(err.code)) return 'transient';
  // Our own budget, or the attempt's signal: the time is spent.
  if (isAbort(err)) return 'final';
  // Stryker disable next-line ConditionalExpression: equivalent, the set holds only strings
  if (typeof err.name === 'string' && THROTTLING_NAMES.has(err.name)) return 'throttled';
  const status = httpStatusOf(error);
  if (status === 429) return 'throttled';
  if (err.code === GRPC_RESOURCE_EXHAUSTED && 'details' in err) return 'throttled';
  if (status === 500 || status === 502 || status === 503 || status === 504) return 'transient';
  if (err.code === GRPC_UNAVAILABLE && 'details' in err) return 'transient';
  return 'final';
}

/** How long a throttling answer asked to wait (Retry-After seconds or date, retry-after-ms, gRPC retry delay). */
export function retryAfterMs(error: unknown, now: number = Date.now()): number | undefined {
  const err = error as Loose | undefined;
  // Stryker disable next-line ConditionalExpression: equivalent, a string or number has none of the fields read below
  if (!err || typeof err !== 'object') return undefined;
  const marked = (err as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof marked === 'number' && marked >= 0) return marked;
  const headers = [err.$response?.headers, err.response?.headers, err.headers];
  for (const bag of headers) {
    const millis = header(bag, 'retry-after-ms');
    // Stryker disable next-line ConditionalExpression: equivalent, 'undefined' is not digits
    if (millis !== undefined && /^\d+$/.test(millis)) return Number(millis);
    const after = header(bag, 'retry-after');
    if (after === undefined) continue;
    if (/^\d+(\.\d+)?$/.test(after.trim())) return Math.round(Number(after) * 1_000);
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const grpcDelay = err.metadata?.get?.('retry-delay-ms')?.[0];
  // Stryker disable next-line ConditionalExpression: equivalent, 'undefined' is not digits
  if (grpcDelay !== undefined && /^\d+$/.test(String(grpcDelay))) return Number(grpcDelay);
  // google.rpc.RetryInfo, as google-gax decodes it from grpc-status-details-bin into statusDetails.
  // Stryker disable next-line ArrayDeclaration: equivalent, a default's strings have no retryDelay
  for (const detail of err.statusDetails ?? []) {
    const delay = (detail as { retryDelay?: { seconds?: unknown; nanos?: unknown } } | null)?.retryDelay;
    if (delay) return Math.round(Number(String(delay.seconds ?? 0)) * 1_000 + Number(delay.nanos ?? 0) / 1e6);
  }
  return undefined;
}

function header(bag: unknown, name: string): string | undefined {
  // Stryker disable next-line ConditionalExpression: equivalent, a string's entries are its characters, never a header name
  if (!bag || typeof bag !== 'object') return undefined;
  if (typeof (bag as { get?: unknown }).get === 'function') {
    const value = (bag as { get(name: string): unknown }).get(name);
    return typeof value === 'string' ? value : undefined;
  }
  for (const [key, value] of Object.entries(bag as Record<string, unknown>)) {
    if (key.toLowerCase() === name) return Array.isArray(value) ? String(value[0]) : typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

/**
 * Marks a mapped error (a StoreUnreachable "is throttling requests") as the service's refusal for
 * rate, so that a bulk admin action slows down and sends it again instead of failing the row.
 */
export function markThrottled<E extends Error>(error: E, retryAfter?: number): E {
  Object.assign(error, { throttled: true, ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}) });
  return error;
}

/** True for a throttling answer: one marked by markThrottled, or a raw SDK/HTTP one. */
export function throttledError(error: unknown): boolean {
  // Stryker disable next-line ConditionalExpression: equivalent, a string or number has no throttled field
  if (error && typeof error === 'object' && (error as { throttled?: unknown }).throttled === true) return true;
  return classifyStoreError(error) === 'throttled';
}

/** An attempt ended by a signal: a budget's or a caller's deadline (not the AWS SDK's reset socket, also "TimeoutError"). */
function isAbort(error: unknown): boolean {
  const { name, code } = (error ?? {}) as Loose;
  if (name !== 'TimeoutError' && name !== 'AbortError') return false;
  // Stryker disable next-line ConditionalExpression: equivalent, the set holds only strings
  return !(typeof code === 'string' && TRANSIENT_CODES.has(code));
}
