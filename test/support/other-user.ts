// A second local user and unfriendly file systems for tests that run as root: files owned by
// uid 65534 (nobody), the binary run as that user (setpriv), a read-only bind mount, a full tmpfs.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BINARY, runBinary, type RunOptions, type RunResult } from './binary.ts';

export const OTHER_UID = 65534;

/** Makes `target` (and everything under it) belong to uid/gid 65534. */
export function chownToOther(target: string): void {
  execFileSync('chown', ['-R', `${OTHER_UID}:${OTHER_UID}`, target]);
}

/** Runs the built binary as uid 65534, with no supplementary groups. */
export function runBinaryAsOther(args: string[], options: RunOptions): Promise<RunResult> {
  return runBinary(['--reuid', String(OTHER_UID), '--regid', String(OTHER_UID), '--clear-groups', options.command ?? BINARY, ...args], {
    ...options,
    command: 'setpriv',
  });
}

/** Mounts `dir` read-only onto itself; returns the undo. */
export function bindReadOnly(dir: string): () => void {
  execFileSync('mount', ['--bind', dir, dir]);
  execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
  return () => execFileSync('umount', [dir]);
}

/** Mounts a small tmpfs at `dir` and fills it until a write fails with ENOSPC; returns the undo. */
export function fullTmpfs(dir: string, prepare: (dir: string) => void = () => {}): () => void {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]);
  prepare(dir);
  const filler = fs.openSync(path.join(dir, 'filler'), 'w');
  const block = Buffer.alloc(4096, 1);
  try {
    for (;;) fs.writeSync(filler, block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    fs.closeSync(filler);
  }
  return () => execFileSync('umount', [dir]);
}
