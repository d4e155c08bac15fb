// Files written whole through a temp file and a rename, and the temps that a killed writer left.
import fs from 'node:fs';
import path from 'node:path';

/**
 * A temp file older than this is a dead writer's: a live one renames it microseconds after writing,
 * and even a starved one (50 cold gets on a busy 2-core machine) within a few seconds. Removing a
 * live writer's temp costs it only its cache write ("not cached"), never a wrong file.
 */
const STALE_TEMP_MS = 10_000;

const TEMP_NAME = /^(.+)\.(\d+)\.tmp$/;

/** `data` into `target` through `<target>.<pid>.tmp` and a rename; a failed write leaves no temp behind. */
export function writeFileAtomic(target: string, data: string | Uint8Array, mode: number): void {
  const temp = `${target}.${process.pid}.tmp`;
  try {
    fs.rmSync(temp, { force: true }); // left by an earlier process with this pid
    fs.writeFileSync(temp, data, { mode, flag: 'wx' });
    fs.renameSync(temp, target);
  } catch (error) {
    removeQuietly(temp);
    throw error;
  }
}

/**
 * Removes the temps in `dir` whose final name passes `isOurs` that a writer killed between write
 * and rename left behind (they may hold a plaintext key): older than STALE_TEMP_MS, or their pid is
 * not running. A young temp of a live process is left. The names removed.
 */
export function removeStaleTemps(dir: string, isOurs: (finalName: string) => boolean, now = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = TEMP_NAME.exec(name);
    if (!match || !isOurs(match[1]!)) continue;
    const file = path.join(dir, name);
    let age: number;
    try {
      age = now - fs.lstatSync(file).mtimeMs;
    } catch {
      continue;
    }
    // Young, or dated ahead of this clock (its age says nothing): left while its writer runs.
    if (age < STALE_TEMP_MS && processAlive(Number(match[2]))) continue;
    if (removeQuietly(file)) removed.push(name);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function removeQuietly(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}
