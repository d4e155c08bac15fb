// Part src/kernel/: the kernel: errors, durations, hashing, output, paths, the retry policy. May use: nothing of ours.
// Typed failures: created where the fact is known, carrying the fix, mapped to an exit code
// and one stderr line in one place (src/cli/main.ts).

export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  config: 3,
  notAuthenticated: 4,
  secretNotFound: 5,
  accessDenied: 6,
  storeUnreachable: 7,
  unusableKey: 8,
  cacheUnavailable: 9,
  keyRejected: 10,
  outputFailed: 11,
  /** Stopped by SIGINT/SIGTERM (128 + SIGINT, the shell's convention). */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What each exit code means: `--help` prints these and the README's table must say the same (test/docs/drift.test.ts). */
export const EXIT_MEANINGS: Record<ExitCode, string> = {
  0: 'the key is on stdout',
  1: 'internal error',
  2: 'usage error',
  3: 'configuration error',
  4: 'not authenticated to the store',
  5: 'secret not found',
  6: 'access denied',
  7: 'store unreachable or timed out',
  8: 'unusable key value',
  9: 'cache unavailable',
  10: 'key rejected by the gateway',
  11: 'output failed',
  130: 'interrupted',
};

export abstract class KeybrokerError extends Error {
  abstract readonly exitCode: ExitCode;
  /** What to do next, in one clause: "run 'aws sso login --profile dev'". */
  readonly fix: string;
  constructor(what: string, fix: string, options?: { cause?: unknown }) {
    super(what, options);
    this.fix = fix;
    this.name = new.target.name;
  }
  /** The one stderr line: "what failed: what to do". */
  line(): string {
    const what = oneLine(this.message);
    return this.fix ? `${what}: ${oneLine(this.fix)}` : what;
  }
}

export class UsageError extends KeybrokerError {
  readonly exitCode = ExitCode.usage;
}
export class ConfigError extends KeybrokerError {
  readonly exitCode = ExitCode.config;
}
export class NotAuthenticated extends KeybrokerError {
  readonly exitCode = ExitCode.notAuthenticated;
}
export class SecretNotFound extends KeybrokerError {
  readonly exitCode = ExitCode.secretNotFound;
}
export class AccessDenied extends KeybrokerError {
  readonly exitCode = ExitCode.accessDenied;
}
export class StoreUnreachable extends KeybrokerError {
  readonly exitCode = ExitCode.storeUnreachable;
}
/** The store answered and refused the request (a 4xx it gives no other meaning): nothing was done, so nothing is left to settle. */
export class StoreRefused extends StoreUnreachable {}
export class UnusableKey extends KeybrokerError {
  readonly exitCode = ExitCode.unusableKey;
}
export class CacheUnavailable extends KeybrokerError {
  readonly exitCode = ExitCode.cacheUnavailable;
}
/** Standard output could not be written (a full disk it is redirected to, an I/O error): the key was not delivered. */
export class OutputFailed extends KeybrokerError {
  readonly exitCode = ExitCode.outputFailed;
}
export class KeyRejected extends KeybrokerError {
  readonly exitCode = ExitCode.keyRejected;
}

/** A bulk admin action stopped by SIGINT/SIGTERM after its rows in flight finished. */
export class Interrupted extends KeybrokerError {
  readonly exitCode = ExitCode.interrupted;
}

/**
 * Errors of the store that a cached key may paper over (stale-if-error): the store cannot answer,
 * or answers with a value no one can use (a malformed answer, a broken put); not a denial or a revocation.
 */
export function isTransientStoreFailure(error: unknown): boolean {
  return error instanceof StoreUnreachable || error instanceof UnusableKey;
}

export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
