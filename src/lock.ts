// Cross-process single flight: a per-key lock in its own file, held only around a store read.
// A holder that dies leaves a lock whose mtime stops moving; it is taken over once stale.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import lockfile from 'proper-lockfile';
import { checkPrivateDir } from './paths.ts';

export interface Lock {
  /** Waits up to `waitMs` for the lock; resolves to its release, or undefined when the wait ran out. */
  acquire(name: string, waitMs: number): Promise<(() => Promise<void>) | undefined>;
}

/** proper-lockfile's smallest stale threshold: a killed holder blocks others this long at most. */
export const LOCK_STALE_MS = 5_000;

export function fileLock(dir: string): Lock {
  return {
    async acquire(name, waitMs) {
      if (checkPrivateDir(dir)) return undefined;
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = path.join(dir, createHash('sha256').update(name).digest('hex').slice(0, 24));
      const deadline = Date.now() + waitMs;
      for (;;) {
        try {
          const release = await lockfile.lock(file, {
            realpath: false,
            stale: LOCK_STALE_MS,
            onCompromised: () => {},
          });
          return async () => {
            await release().catch(() => {});
          };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') return undefined;
          if (Date.now() >= deadline) return undefined;
          await new Promise((resolve) => setTimeout(resolve, 25 + Math.random() * 50));
        }
      }
    },
  };
}

export const noLock: Lock = {
  acquire: async () => async () => {},
};
