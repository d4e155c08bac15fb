// The refresh lock across real processes: one holder at a time, a SIGKILLed holder taken over at once.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EMPTY_LOCK_GRACE_MS, LOCK_MAX_AGE_MS, fileLock, lockFilePath, parseHolder, pollMs } from '../../src/broker/lock.ts';
import { makePrivateDir } from '../../src/kernel/paths.ts';
import { processStartTime } from '../../src/broker/caller.ts';
import { callTime, expectWithinBound } from '../support/time-bounds.ts';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
/** An errno error as node:fs throws it. */
const errno = (code: string) => Object.assign(new Error(`${code}: simulated`), { code });
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-lock-'));
  dirs.push(dir);
  return path.join(dir, 'locks');
}

/** The yardstick here: a waiter giving up on a live holder after 50 ms (a few polls, as slow as this machine is now). */
async function shortWait() {
  const dir = tempDir();
  const release = await fileLock(dir).acquire('k', 1_000);
  try {
    return await callTime('a 50 ms wait on a held lock', () => fileLock(dir).acquire('k', 50));
  } finally {
    await release!();
  }
}

describe('fileLock', () => {
  it('lets one holder in at a time and the next in after release', async () => {
    const lock = fileLock(tempDir());
    const release = await lock.acquire('k', 1_000);
    expect(release).toBeDefined();
    expect(await lock.acquire('k', 100)).toBeUndefined();
    await release!();
    const again = await lock.acquire('k', 100);
    expect(again).toBeDefined();
    await again!();
  });

  it('takes over at once from a holder killed with SIGKILL (no stale-time wait)', async () => {
    const dir = tempDir();
    const script = `
      const { fileLock } = await import(${JSON.stringify(path.resolve('src/broker/lock.ts'))});
      await fileLock(${JSON.stringify(dir)}).acquire('k', 1000);
      process.stdout.write('held');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    expect(parseHolder(fs.readFileSync(lockFilePath(dir, 'k'), 'utf8'))!.pid).toBe(child.pid);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const yardstick = await shortWait();
    const started = performance.now();
    const release = await fileLock(dir).acquire('k', 60_000);
    const waited = performance.now() - started;
    expect(release).toBeDefined();
    // A few polls, where a stale-time lock (proper-lockfile) waits its 5 s minimum.
    await expectWithinBound('taking over from a SIGKILLed holder', waited, 0, yardstick);
    console.log(`lock taken over ${waited.toFixed(1)} ms after its holder was SIGKILLed`);
    await release!();
  });

  it('does not take a lock from a live holder, and gives up when the wait runs out', async () => {
    const dir = tempDir();
    const release = await fileLock(dir).acquire('k', 100);
    const started = performance.now();
    expect(await fileLock(dir).acquire('k', 300)).toBeUndefined();
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    await release!();
  });

  it('does not take a lock from a live holder looked at within the millisecond it was made (mtime a fraction ahead of Date.now())', async () => {
    const dir = tempDir();
    const release = await fileLock(dir).acquire('k', 100);
    // What a waiter sees in that millisecond: the file's time has sub-millisecond precision, Date.now()
    // not, so the lock looks a fraction of a millisecond ahead (seen once in a full run: taken over).
    // Made half a second ahead here so that the check does not depend on hitting that millisecond.
    const ahead = (Date.now() + 500) / 1000;
    fs.utimesSync(lockFilePath(dir, 'k'), ahead, ahead);
    expect(await fileLock(dir).acquire('k', 100)).toBeUndefined();
    await release!();
  });

  it("goes ahead at once, without waiting, where its folder cannot be created (under /proc), told the folder's problem", async () => {
    const yardstick = await shortWait();
    const started = performance.now();
    const told: string[] = [];
    const release = await fileLock('/proc/keybroker-locks', { noLock: (reason) => void told.push(reason) }).acquire('k', 60_000);
    expect(release).toBeDefined();
    expect(told).toEqual([makePrivateDir('/proc') ?? makePrivateDir('/proc/keybroker-locks')]);
    await expectWithinBound('a lock under /proc', performance.now() - started, 0, yardstick);
    await release!();
  });

  it('treats a lock naming a pid that runs but started at another time as abandoned (pid reuse)', async () => {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(lockFilePath(dir, 'k'), `${process.pid} 1 oldnonce\n`);
    const release = await fileLock(dir).acquire('k', 1_000);
    expect(release).toBeDefined();
    expect(parseHolder(fs.readFileSync(lockFilePath(dir, 'k'), 'utf8'))?.nonce).not.toBe('oldnonce');
    await release!();
  });
});

describe('the holder a lock file names', () => {
  it('is its pid, its start time and its nonce; "-" stands for a start time that cannot be told', () => {
    expect(parseHolder('123 4567 0123456789ab\n')).toEqual({ pid: 123, start: '4567', nonce: '0123456789ab' });
    expect(parseHolder('123 - 0123456789ab')).toEqual({ pid: 123, start: '', nonce: '0123456789ab' });
  });

  it.each([
    ['an empty file (a holder between open and write)', ''],
    ['no nonce', '123 4567'],
    ['a pid with trailing junk', '123x 4567 0123456789ab'],
    ['a pid with leading junk', 'x123 4567 0123456789ab'],
    ['a negative pid', '-1 4567 0123456789ab'],
  ])('is nobody for %s', (_what, text) => {
    expect(parseHolder(text)).toBeUndefined();
  });
});

describe('waiting', () => {
  it('a waiter looks again after a quarter of its wait, at least 15 ms and at most 125 ms (its documented pace)', () => {
    expect(pollMs(0)).toBe(15);
    expect(pollMs(200)).toBe(50);
    expect(pollMs(60_000)).toBe(125);
  });

  it('goes ahead without a lock where none can be taken, with nobody listening for why', async () => {
    expect(await fileLock('/proc/keybroker-locks').acquire('k', 0)).toBeDefined();
  });

  it('a waiter told to give up takes nothing, not even a free lock', async () => {
    const dir = tempDir();
    expect(await fileLock(dir).acquire('k', 1_000, () => true)).toBeUndefined();
    expect(fs.existsSync(lockFilePath(dir, 'k'))).toBe(false);
  });
});

describe('the lock file', () => {
  it('names this process: its pid, its start time and a fresh 12-digit nonce; heldSince is when it was made', async () => {
    const dir = tempDir();
    const lock = fileLock(dir);
    expect(await lock.heldSince!('k')).toBeUndefined();
    const release = await lock.acquire('k', 100);
    const file = lockFilePath(dir, 'k');
    expect(parseHolder(fs.readFileSync(file, 'utf8'))).toEqual({
      pid: process.pid,
      start: processStartTime(process.pid),
      nonce: expect.stringMatching(/^[0-9a-f]{12}$/),
    });
    expect(await lock.heldSince!('k')).toBe(fs.statSync(file).mtimeMs);
    await release!();
    expect(await lock.heldSince!('k')).toBeUndefined();
  });

  it('that cannot be created (a read-only file system): the caller goes ahead without a lock at once, told why', async () => {
    const dir = tempDir();
    const told: string[] = [];
    vi.spyOn(fs, 'openSync').mockImplementation(() => {
      throw errno('EROFS');
    });
    const release = await fileLock(dir, { noLock: (reason) => void told.push(reason) }).acquire('k', 60_000);
    expect(release).toBeDefined();
    expect(told).toEqual([`cannot write ${lockFilePath(dir, 'k')} (EROFS: the file system is read-only)`]);
  });

  it('that cannot be written once created (a full disk) is removed, not left to look like a holder, and the caller goes ahead', async () => {
    const dir = tempDir();
    const told: string[] = [];
    vi.spyOn(fs, 'writeSync').mockImplementationOnce(() => {
      throw errno('ENOSPC');
    });
    const release = await fileLock(dir, { noLock: (reason) => void told.push(reason) }).acquire('k', 60_000);
    expect(release).toBeDefined();
    expect(told).toEqual([`cannot write ${lockFilePath(dir, 'k')} (ENOSPC: the disk is full)`]);
    expect(fs.existsSync(lockFilePath(dir, 'k'))).toBe(false);
  });
});

describe('releasing', () => {
  it("leaves alone a lock that another process took over meanwhile (its nonce, not this holder's)", async () => {
    const dir = tempDir();
    const release = await fileLock(dir).acquire('k', 100);
    const file = lockFilePath(dir, 'k');
    fs.writeFileSync(file, `${process.pid} - othernonce00\n`);
    await release!();
    expect(fs.readFileSync(file, 'utf8')).toBe(`${process.pid} - othernonce00\n`);
  });

  it('removes its own lock, so the next caller takes it without waiting', async () => {
    const dir = tempDir();
    const release = await fileLock(dir).acquire('k', 100);
    await release!();
    expect(fs.existsSync(lockFilePath(dir, 'k'))).toBe(false);
  });
});

describe('planted lock files, judged with an injected clock', () => {
  /** A lock file at `dir` for key 'k' with `text`, modified at `mtimeMs`. */
  function plant(text: string, mtimeMs: number): string {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = lockFilePath(dir, 'k');
    fs.writeFileSync(file, text, { mode: 0o600 });
    fs.utimesSync(file, mtimeMs / 1000, mtimeMs / 1000);
    return dir;
  }
  /** Whether a waiter that looks once, at `now`, takes the lock. */
  async function takenAt(dir: string, now: number): Promise<boolean> {
    const release = await fileLock(dir, { now: () => now }).acquire('k', 0);
    await release?.();
    return release !== undefined;
  }
  const T = Date.parse('2026-12-07T00:00:00Z');
  // This very process: alive, the same program, its real start time.
  const liveHolder = () => `${process.pid} ${processStartTime(process.pid) ?? '-'} 0123456789ab\n`;

  it('a live holder keeps its lock up to the 60 s maximum age, and loses it from then on', async () => {
    expect(await takenAt(plant(liveHolder(), T), T + LOCK_MAX_AGE_MS - 1_000)).toBe(false);
    expect(await takenAt(plant(liveHolder(), T), T + LOCK_MAX_AGE_MS)).toBe(true);
    expect(await takenAt(plant(liveHolder(), T), T + LOCK_MAX_AGE_MS + 1_000)).toBe(true);
  });

  it("a live holder's lock stamped more than a second ahead (the clock was set back) is past any age: taken", async () => {
    expect(await takenAt(plant(liveHolder(), T + 3_600_000), T)).toBe(true);
    // Within the clocks' granularity it is the holder's, as when just made.
    expect(await takenAt(plant(liveHolder(), T + 500), T)).toBe(false);
  });

  it("an empty lock file is a holder between open and write for a second, then nobody's", async () => {
    expect(await takenAt(plant('', T), T + EMPTY_LOCK_GRACE_MS - 500)).toBe(false);
    expect(await takenAt(plant('', T), T + EMPTY_LOCK_GRACE_MS)).toBe(true);
    expect(await takenAt(plant('', T), T + EMPTY_LOCK_GRACE_MS + 500)).toBe(true);
  });
});

describe('taking over, when the lock changes under the waiter', () => {
  /** A dead holder's lock in `dir`, for key 'k'. */
  function deadHoldersLock(): string {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(lockFilePath(dir, 'k'), '999999999 - 0123456789ab\n', { mode: 0o600 });
    return dir;
  }

  it("a lock a live process re-created between the waiter's look and its move is put back, not deleted", async () => {
    const dir = deadHoldersLock();
    const file = lockFilePath(dir, 'k');
    const live = `${process.pid} ${processStartTime(process.pid) ?? '-'} fedcba987654\n`;
    const rename = fs.renameSync;
    vi.spyOn(fs, 'renameSync').mockImplementationOnce((from, to) => {
      // In the window: the dead holder's lock is taken over and re-made by a live process.
      fs.writeFileSync(file, live);
      rename(from, to);
    });
    expect(await fileLock(dir).acquire('k', 0)).toBeUndefined();
    expect(fs.readFileSync(file, 'utf8')).toBe(live);
    expect(fs.readdirSync(dir)).toEqual([path.basename(file)]);
  });

  it('a lock whose holder let go between the failed create and the look is tried again, not judged', async () => {
    const dir = deadHoldersLock();
    const open = fs.openSync;
    vi.spyOn(fs, 'openSync').mockImplementation((file, flags, mode) => {
      if (typeof flags === 'number' && flags & fs.constants.O_EXCL) throw errno('EEXIST');
      if (String(file) === lockFilePath(dir, 'k')) throw errno('ENOENT');
      return open(file, flags, mode);
    });
    expect(await fileLock(dir).acquire('k', 0)).toBeUndefined();
  });

  it('a lock that another waiter moved away first is not taken by this one in the same look', async () => {
    const dir = deadHoldersLock();
    vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
      throw errno('ENOENT');
    });
    expect(await fileLock(dir).acquire('k', 0)).toBeUndefined();
  });

  it('something that is no lock and cannot be removed: the caller goes ahead without a lock, told why', async () => {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.symlinkSync('/nowhere', lockFilePath(dir, 'k'));
    vi.spyOn(fs, 'rmSync').mockImplementationOnce(() => {
      throw errno('EACCES');
    });
    const told: string[] = [];
    const release = await fileLock(dir, { noLock: (reason) => void told.push(reason) }).acquire('k', 60_000);
    expect(release).toBeDefined();
    expect(told).toEqual([`${lockFilePath(dir, 'k')} is not a lock file and cannot be removed (EACCES: permission denied)`]);
  });

  it("a link where the lock belongs is nobody's lock: removed and the lock taken", async () => {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.symlinkSync('/nowhere', lockFilePath(dir, 'k'));
    const release = await fileLock(dir).acquire('k', 0);
    expect(release).toBeDefined();
    expect(parseHolder(fs.readFileSync(lockFilePath(dir, 'k'), 'utf8'))?.pid).toBe(process.pid);
    await release!();
  });
});

describe('holders that are not there', () => {
  /** Whether a waiter that looks once takes a lock naming `pid` with its real start time. */
  async function takesLockNaming(pid: number): Promise<boolean> {
    const dir = tempDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(lockFilePath(dir, 'k'), `${pid} ${processStartTime(pid)} 0123456789ab\n`, { mode: 0o600 });
    const release = await fileLock(dir).acquire('k', 0);
    await release?.();
    return release !== undefined;
  }

  it('a zombie holder (exited, not reaped by its parent) counts as dead', async () => {
    // sh starts a short sleep, then becomes a long one that never reaps it: a zombie with a pid and a start time.
    const parent = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (data) => resolve(String(data).trim()))));
      for (let i = 0; i < 200 && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(/\) Z /);
      expect(await takesLockNaming(pid)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('a live process that runs another program is not a holder, even with its own start time', async () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => other.once('spawn', resolve));
      // Until exec is done the child is still node: wait for it to become sleep.
      for (let i = 0; i < 200 && fs.readlinkSync(`/proc/${other.pid}/exe`) === process.execPath; i++)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await takesLockNaming(other.pid!)).toBe(true);
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('a folder where the lock file belongs is no lock: the caller goes ahead without one, told why', async () => {
    const dir = tempDir();
    fs.mkdirSync(lockFilePath(dir, 'k'), { recursive: true, mode: 0o700 });
    const told: string[] = [];
    const release = await fileLock(dir, { noLock: (reason) => void told.push(reason) }).acquire('k', 60_000);
    expect(release).toBeDefined();
    await release!();
    expect(told).toEqual([expect.stringMatching(/\.lock is a folder, not a lock file$/)]);
    expect(fs.statSync(lockFilePath(dir, 'k')).isDirectory()).toBe(true);
  });
});
