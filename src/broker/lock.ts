// Cross-process single flight: a per-key lock in its own file, held only around a store read.
// The file is created with O_EXCL and names its holder (pid + process start time); a waiter
// that finds the holder gone takes the lock over at once. proper-lockfile (mtime-based) could
// only do that after its 5 s minimum stale time; a SIGKILLed holder then cost every waiter ≥5 s.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../kernel/sha256.ts';
import { describeErrno, makePrivateDir, shortPath } from '../kernel/paths.ts';
import { UnsafeFile, openPrivateFile } from '../kernel/private-file.ts';
import { procInfo, processStartTime } from './caller.ts';
import { FILE_TIME_GRACE_MS, recordAgeMs } from '../kernel/record-age.ts';

export interface Lock {
  /**
   * Waits up to `waitMs` for the lock, and only while `giveUp` (asked before each try) says false;
   * resolves to its release (a no-op where no lock can be taken at all), or undefined when it gave up.
   */
  acquire(name: string, waitMs: number, giveUp?: () => boolean): Promise<(() => Promise<void>) | undefined>;
  /** When the present holder took the lock (epoch ms), undefined when nobody holds it or it cannot be told. */
  heldSince?(name: string): Promise<number | undefined>;
}

export interface LockOptions {
  /** Told why, when no lock can be taken at all (a folder that cannot be written, a full disk) and the caller goes ahead without one. */
  noLock?(reason: string): void;
  /** The wall clock that lock files' modification times are compared with (tests plant a time). */
  now?(): number;
}

/**
 * A lock older than this is taken over even if its pid looks alive (pid reuse where start times are
 * unknown, a holder stopped with SIGSTOP). One stamped in the future may be older: taken over too.
 */
export const LOCK_MAX_AGE_MS = 60_000;
/** An empty lock file is a holder between its open and its write for this long; after that, nobody's. */
export const EMPTY_LOCK_GRACE_MS = 1_000;
/** A waiter looks again after 1-2 × this: a quarter of its wait, at least 15 ms, at most 125 ms. */
export function pollMs(waitMs: number): number {
  return Math.min(125, Math.max(15, waitMs / 4));
}

export interface LockHolder {
  pid: number;
  /** Process start time as the OS reports it (/proc ticks, `ps` lstart); '' where unknown. */
  start: string;
  nonce: string;
}

export function lockFilePath(dir: string, name: string): string {
  return path.join(dir, `${sha256Hex(name).slice(0, 24)}.lock`);
}

export function parseHolder(text: string): LockHolder | undefined {
  const [pid, start, nonce] = text.trim().split(' ');
  if (!pid || !/^\d+$/.test(pid) || nonce === undefined) return undefined;
  return { pid: Number(pid), start: start === '-' ? '' : (start ?? ''), nonce };
}

/**
 * True when the process that wrote `holder` may still run, judged by what can be checked: the
 * pid exists and is this user's (a lock of ours is never held by another user's process), it is
 * not a zombie, it does not provably run another program, and its start time matches where known.
 */
function holderAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH' || code === 'EPERM') return false;
  }
  // An exited process that its parent has not reaped yet holds nothing.
  if (process.platform === 'linux' && procInfo(holder.pid)?.state === 'Z') return false;
  if (sameProgram(holder.pid) === false) return false;
  const start = holder.start ? processStartTime(holder.pid) : undefined;
  return start === undefined || start === holder.start;
}

/** Whether `pid` runs the same executable as this process (Linux only; undefined where it cannot be told). */
function sameProgram(pid: number): boolean | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === fs.readlinkSync('/proc/self/exe');
  } catch {
    // Gone, or not ours to look at: it cannot be told (undefined).
  }
}

export function fileLock(dir: string, options: LockOptions = {}): Required<Lock> {
  const now = options.now ?? Date.now;
  const noLock = (reason: string) => {
    options.noLock?.(reason);
    // Stryker disable next-line ArrowFunction: equivalent, awaiting undefined is as immediate as an empty async function
    return async () => {};
  };
  return {
    async heldSince(name) {
      try {
        // The file is written once, when its holder creates it.
        return fs.statSync(lockFilePath(dir, name)).mtimeMs;
      } catch {
        // Nobody holds it, or it cannot be told: undefined.
      }
    },
    async acquire(name, waitMs, giveUp) {
      // No lock can be taken here at all: go ahead without one rather than wait for nothing.
      // The runtime folder and its locks folder must both be this user's own.
      const problem = makePrivateDir(path.dirname(dir)) ?? makePrivateDir(dir);
      if (problem) return noLock(problem);
      const file = lockFilePath(dir, name);
      const me: LockHolder = { pid: process.pid, start: processStartTime(process.pid) ?? '', nonce: randomBytes(6).toString('hex') };
      const content = `${me.pid} ${me.start || '-'} ${me.nonce}\n`;
      // The wait is measured on the monotonic clock: a wall clock set back must not lengthen it.
      const deadline = performance.now() + waitMs;
      for (;;) {
        if (giveUp?.()) return undefined;
        let fd: number | undefined;
        try {
          fd = fs.openSync(
            file,
            fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | (fs.constants.O_NOFOLLOW ?? 0),
            0o600,
          );
          fs.writeSync(fd, content);
          fs.closeSync(fd);
          return async () => releaseIfMine(file, me.nonce);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
            // Not "someone holds it" but "it cannot be taken" (read-only, full disk, no permission): no lock.
            if (fd !== undefined) {
              fs.closeSync(fd);
              // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent, the file was just created, so force changes nothing
              fs.rmSync(file, { force: true });
            }
            return noLock(`cannot write ${shortPath(file)} (${describeErrno(error)})`);
          }
        }
        // A dead holder's lock is taken at once, not after another poll.
        const verdict = takeOverIfAbandoned(file, now());
        if (verdict === 'taken') continue;
        if (verdict !== 'held') return noLock(`${shortPath(file)} ${verdict}`);
        if (performance.now() >= deadline) return undefined;
        const poll = pollMs(waitMs);
        await new Promise((resolve) => setTimeout(resolve, poll + Math.random() * poll));
      }
    },
  };
}

/** The lock file's text and stat, read without blocking; 'not a lock' for anything but a regular file of ours. */
function readLock(file: string): { text: string; stat: fs.Stats } | 'not a lock' | undefined {
  try {
    const opened = openPrivateFile(file);
    // Stryker disable next-line ConditionalExpression: equivalent, without it opened.fd throws and the catch below answers undefined too
    if (!opened) return undefined;
    try {
      return { text: fs.readFileSync(opened.fd, 'utf8'), stat: opened.stat };
    } finally {
      fs.closeSync(opened.fd);
    }
  } catch (error) {
    return error instanceof UnsafeFile ? 'not a lock' : undefined;
  }
}

function releaseIfMine(file: string, nonce: string): void {
  try {
    const lock = readLock(file);
    // Stryker disable next-line ConditionalExpression,OptionalChaining: equivalent, without a lock file of ours this throws and the catch leaves it alone
    if (typeof lock === 'object' && parseHolder(lock.text)?.nonce === nonce) fs.unlinkSync(file);
  } catch {
    // Already taken over or removed: nothing of ours to release.
  }
}

/**
 * Removes a lock whose holder is gone: 'taken' (try again), 'held', or why something that is no lock
 * is in the way and cannot be removed (a folder): then there is no lock to take. The file is first
 * renamed aside and re-read, so a lock that a live process re-created in between is put back, not
 * deleted. The remaining race (two waiters judging the same dead holder) can at worst let two
 * processes read the store once each.
 */
function takeOverIfAbandoned(file: string, now: number): 'taken' | 'held' | string {
  const lock = readLock(file);
  if (lock === undefined) return 'held';
  // A FIFO, a link, a folder or another user's file where the lock belongs (in our own folder) is nobody's lock.
  if (lock === 'not a lock') {
    try {
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent, it was just read, so force changes nothing
      fs.rmSync(file, { force: true });
      return 'taken';
    } catch (error) {
      const folder = (error as NodeJS.ErrnoException).code === 'ERR_FS_EISDIR';
      return folder ? 'is a folder, not a lock file' : `is not a lock file and cannot be removed (${describeErrno(error)})`;
    }
  }
  const { text, stat } = lock;
  const holder = parseHolder(text);
  // From the future (the clock was set back): its age is unknown, so not within any limit.
  const age = recordAgeMs(stat.mtimeMs, now, FILE_TIME_GRACE_MS) ?? Number.POSITIVE_INFINITY;
  // An empty file is a holder between open and write: give it a moment before calling it dead.
  if (!holder && age < EMPTY_LOCK_GRACE_MS) return 'held';
  // A holder that is alive keeps its lock, up to the maximum age (older, its pid may have been reused).
  if (holder && age < LOCK_MAX_AGE_MS && holderAlive(holder)) return 'held';
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return 'held';
  }
  let restored = false;
  try {
    const moved = readLock(aside);
    if (typeof moved === 'object' && moved.text !== text) {
      fs.linkSync(aside, file);
      restored = true;
    }
  } catch {
    // Someone holds a newer lock already: ours is just the stale copy.
  }
  // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent, this process just renamed it there, so force changes nothing
  fs.rmSync(aside, { force: true });
  return restored ? 'held' : 'taken';
}
