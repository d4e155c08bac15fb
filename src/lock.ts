// Cross-process single flight: a per-key lock in its own file, held only around a store read.
// The file is created with O_EXCL and names its holder (pid + process start time); a waiter
// that finds the holder gone takes the lock over at once. proper-lockfile (mtime-based) could
// only do that after its 5 s minimum stale time; a SIGKILLed holder then cost every waiter ≥5 s.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { sha256Hex } from './sha256.ts';
import { makePrivateDir } from './paths.ts';
import { processStartTime } from './caller.ts';

export interface Lock {
  /** Waits up to `waitMs` for the lock; resolves to its release (a no-op where no lock can be taken at all), or undefined when the wait ran out. */
  acquire(name: string, waitMs: number): Promise<(() => Promise<void>) | undefined>;
  /** When the present holder took the lock (epoch ms), undefined when nobody holds it or it cannot be told. */
  heldSince?(name: string): Promise<number | undefined>;
}

/** A lock older than this is taken over even if its pid looks alive (pid reuse where start times are unknown). */
const LOCK_MAX_AGE_MS = 60_000;
/** A waiter looks again after 1-2 × this: a quarter of its wait, at least 15 ms, at most 125 ms. */
function pollMs(waitMs: number): number {
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

/** True when the process that wrote `holder` still runs (same pid and same start time). */
function holderAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (!holder.start) return true;
  const start = processStartTime(holder.pid);
  return start === undefined || start === holder.start;
}

export function fileLock(dir: string): Lock {
  return {
    async heldSince(name) {
      try {
        // The file is written once, when its holder creates it.
        return fs.statSync(lockFilePath(dir, name)).mtimeMs;
      } catch {
        return undefined;
      }
    },
    async acquire(name, waitMs) {
      // No lock can be taken here at all: go ahead without one rather than wait for nothing.
      if (makePrivateDir(dir)) return async () => {};
      const file = lockFilePath(dir, name);
      const me: LockHolder = { pid: process.pid, start: processStartTime(process.pid) ?? '', nonce: randomBytes(6).toString('hex') };
      const content = `${me.pid} ${me.start || '-'} ${me.nonce}\n`;
      const deadline = Date.now() + waitMs;
      for (;;) {
        try {
          const fd = fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600);
          fs.writeSync(fd, content);
          fs.closeSync(fd);
          return async () => releaseIfMine(file, me.nonce);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
        }
        // A dead holder's lock is taken at once, not after another poll.
        if (takeOverIfAbandoned(file)) continue;
        if (Date.now() >= deadline) return undefined;
        const poll = pollMs(waitMs);
        await new Promise((resolve) => setTimeout(resolve, poll + Math.random() * poll));
      }
    },
  };
}

function releaseIfMine(file: string, nonce: string): void {
  try {
    if (parseHolder(fs.readFileSync(file, 'utf8'))?.nonce === nonce) fs.unlinkSync(file);
  } catch {
    // Already taken over or removed: nothing of ours to release.
  }
}

/**
 * Removes a lock whose holder is gone. The file is first renamed aside and re-read, so a lock
 * that a live process re-created in between is put back, not deleted. The remaining race (two
 * waiters judging the same dead holder) can at worst let two processes read the store once each.
 */
function takeOverIfAbandoned(file: string): boolean {
  let text: string;
  let stat: fs.Stats;
  try {
    text = fs.readFileSync(file, 'utf8');
    stat = fs.statSync(file);
  } catch {
    return false;
  }
  const holder = parseHolder(text);
  // An empty file is a holder between open and write: give it a moment before calling it dead.
  const young = Date.now() - stat.mtimeMs < 1_000;
  if (!holder && young) return false;
  if (holder && holderAlive(holder) && Date.now() - stat.mtimeMs < LOCK_MAX_AGE_MS) return false;
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return false;
  }
  let restored = false;
  try {
    if (fs.readFileSync(aside, 'utf8') !== text) {
      fs.linkSync(aside, file);
      restored = true;
    }
  } catch {
    // Someone holds a newer lock already: ours is just the stale copy.
  }
  fs.rmSync(aside, { force: true });
  return !restored;
}
