// One bounded retry policy for every store: a few attempts inside the call's whole time budget,
// waiting as long as the store asks when it throttles (AWS ThrottlingException, HTTP 429 with
// Retry-After, gRPC RESOURCE_EXHAUSTED) and backing off with jitter on transient failures.
//
// How a provider uses it (providers/aws.ts does):
//   return withStoreRetry((signal) => client.send(command, { abortSignal: signal }), { budgetMs: context.timeoutMs });
// Turn the SDK's own retries off (AWS maxAttempts: 1, Azure retryOptions.maxRetries: 0,
// GCP `retry: null`/gax `maxRetries: 0`, node-vault none) so one policy bounds the total time,
// then map the final error to a KeybrokerError as before.

export interface RetryOptions {
  /** The whole call, attempts and waits included, ends within this. */
  budgetMs: number;
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
  random?(): number;
  /** Told before each wait (for debug traces). */
  onRetry?(info: { attempt: number; waitMs: number; reason: RetryClass }): void;
}

export type RetryClass = 'throttled' | 'transient' | 'final';

const STORE_RETRY_DEFAULTS = { attempts: 4, baseDelayMs: 150, maxDelayMs: 2_000 } as const;

/** The call's budget ran out (before an attempt, or while one ignored its signal); providers map it as a timeout. */
export class RetryBudgetExceeded extends Error {
  override name = 'TimeoutError';
}

export async function withStoreRetry<T>(attempt: (signal: AbortSignal, attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  // An attempt that ignores its signal (the `az` process, a token refresh) still ends the call in time.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RetryBudgetExceeded(`no answer within ${options.budgetMs} ms`)), options.budgetMs);
  });
  try {
    return await Promise.race([attemptWithinBudget(attempt, options), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function attemptWithinBudget<T>(attempt: (signal: AbortSignal, attemptNumber: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const classify = options.classify ?? classifyStoreError;
  const attempts = options.attempts ?? STORE_RETRY_DEFAULTS.attempts;
  const base = options.baseDelayMs ?? STORE_RETRY_DEFAULTS.baseDelayMs;
  const cap = options.maxDelayMs ?? STORE_RETRY_DEFAULTS.maxDelayMs;
  const deadline = now() + options.budgetMs;
  for (let number = 1; ; number++) {
    const remaining = deadline - now();
    if (remaining <= 0) throw new RetryBudgetExceeded(`no answer within ${options.budgetMs} ms`);
    try {
      return await attempt(AbortSignal.timeout(remaining), number);
    } catch (error) {
      const reason = classify(error);
      if (reason === 'final' || number >= attempts) throw error;
      const asked = reason === 'throttled' ? retryAfterMs(error, now()) : undefined;
      // Sooner than the store asked only earns another refusal: then the answer is "throttled" now.
      if (asked !== undefined && asked > cap) throw error;
      const backoff = Math.round(random() * Math.min(cap, base * 2 ** (number - 1)));
      // A throttling answer waits at least `base`, even when Retry-After (whole seconds, truncated) says 0.
      const waitMs = Math.min(cap, Math.max(asked ?? backoff, reason === 'throttled' ? base : 0));
      // A wait that would leave no time for the next attempt only delays the failure.
      if (now() + waitMs >= deadline - 50) throw error;
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

const THROTTLING_NAMES = new Set(['ThrottlingException', 'Throttling', 'TooManyRequestsException', 'RequestLimitExceeded', 'ProvisionedThroughputExceededException', 'TooManyRequests']);
const GRPC_RESOURCE_EXHAUSTED = 8;
const GRPC_UNAVAILABLE = 14;
const TRANSIENT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED', 'EAI_AGAIN', 'ETIMEDOUT', 'UND_ERR_SOCKET']);

function httpStatusOf(error: unknown): number | undefined {
  const err = error as Loose | undefined;
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
  if (!err || typeof err !== 'object') return 'final';
  // The AWS SDK names a reset socket "TimeoutError" with code ECONNRESET: look at the code first.
  if (typeof err.code === 'string' && TRANSIENT_CODES.has(err.code)) return 'transient';
  // Our own budget, or the attempt's signal: the time is spent.
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'final';
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
  if (!err || typeof err !== 'object') return undefined;
  const marked = (err as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof marked === 'number' && marked >= 0) return marked;
  const headers = [err.$response?.headers, err.response?.headers, err.headers];
  for (const bag of headers) {
    const millis = header(bag, 'retry-after-ms');
    if (millis !== undefined && /^\d+$/.test(millis)) return Number(millis);
    const after = header(bag, 'retry-after');
    if (after === undefined) continue;
    if (/^\d+(\.\d+)?$/.test(after.trim())) return Math.round(Number(after) * 1_000);
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const grpcDelay = err.metadata?.get?.('retry-delay-ms')?.[0];
  if (grpcDelay !== undefined && /^\d+$/.test(String(grpcDelay))) return Number(grpcDelay);
  // google.rpc.RetryInfo, as google-gax decodes it from grpc-status-details-bin into statusDetails.
  for (const detail of err.statusDetails ?? []) {
    const delay = (detail as { retryDelay?: { seconds?: unknown; nanos?: unknown } } | null)?.retryDelay;
    if (delay) return Math.round(Number(String(delay.seconds ?? 0)) * 1_000 + Number(delay.nanos ?? 0) / 1e6);
  }
  return undefined;
}

function header(bag: unknown, name: string): string | undefined {
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
  if (error && typeof error === 'object' && (error as { throttled?: unknown }).throttled === true) return true;
  return classifyStoreError(error) === 'throttled';
}
