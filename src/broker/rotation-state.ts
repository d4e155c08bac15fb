// What `get` remembers between runs besides the key itself, in the per-user runtime folder:
// which caller was handed which key (a fingerprint, never the key) and when, the last 401
// re-check's verdict, and the last store failure (so processes waiting on one refresh share it).
import fs from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '../kernel/sha256.ts';
import { makePrivateDir } from '../kernel/paths.ts';
import { readPrivateFile } from '../kernel/private-file.ts';
import { writeFileAtomic } from '../kernel/temp-files.ts';

interface ServedRecord {
  fingerprint: string;
  version: string;
  at: number;
}

interface RecheckRecord {
  at: number;
  /** The key the store held at the re-check. */
  fingerprint: string;
  /** rejected: the gateway refused it and the store had nothing newer. */
  verdict: 'newer' | 'same' | 'rejected';
  gateway?: string;
}

export interface StoreFailureRecord {
  at: number;
  /** The error's class name and its message and fix, to raise the same error in a waiter. */
  kind: string;
  message: string;
  fix: string;
}

export interface RotationState {
  servedTo(account: string, caller: string): ServedRecord | undefined;
  recordServed(account: string, caller: string, record: ServedRecord): void;
  lastRecheck(account: string): RecheckRecord | undefined;
  recordRecheck(account: string, record: RecheckRecord): void;
  lastStoreFailure(account: string): StoreFailureRecord | undefined;
  recordStoreFailure(account: string, record: StoreFailureRecord | undefined): void;
  /** When a background refresh was last started. */
  lastRefreshAhead(account: string): number | undefined;
  recordRefreshAhead(account: string, at: number): void;
}

/** Served records older than this are useless (callers re-ask within their TTL) and are swept. */
const SWEEP_AFTER_MS = 24 * 3_600_000;

/**
 * One small 0600 JSON file per fact in a 0700 folder of this user; every write is an atomic
 * rename. A record is read only from a regular file of this user (no FIFO, no link). Never throws.
 */
export function fileRotationState(dir: string, now: () => number = Date.now): RotationState {
  // Stryker disable next-line MethodExpression: equivalent, the whole hash names each record as uniquely as its first 24 digits
  const name = (...parts: string[]) => path.join(dir, sha256Hex(parts.join('\0')).slice(0, 24));
  let ready: boolean | undefined;
  function ensureDir(): boolean {
    // Without the folder the 401 rule and failure sharing are off; `get` still works.
    // The runtime folder itself and its state folder must both be this user's own (checked once).
    ready ??= makePrivateDir(path.dirname(dir)) === undefined && makePrivateDir(dir) === undefined;
    return ready;
  }
  function read<T>(file: string): T | undefined {
    // A folder of another user, or a file that is not a regular file of ours, holds nothing to trust.
    if (!ensureDir()) return undefined;
    try {
      const text = readPrivateFile(file);
      return text === undefined ? undefined : (JSON.parse(text) as T);
    } catch {
      // An unreadable or half-written record is none.
    }
    return undefined;
  }
  function write(file: string, value: unknown): void {
    if (!ensureDir()) return;
    try {
      // Stryker disable next-line ObjectLiteral,BooleanLiteral: equivalent, removing a record that is not there throws into the catch below
      if (value === undefined) return void fs.rmSync(file, { force: true });
      writeFileAtomic(file, JSON.stringify(value), 0o600);
    } catch {
      // A record that cannot be written is a record not kept: the next call asks again.
    }
  }
  function sweep(): void {
    // Roughly one write in fifty looks for served records of long-gone callers.
    if (Math.random() > 0.02) return;
    try {
      for (const entry of fs.readdirSync(dir)) {
        if (!entry.endsWith('.served')) continue;
        const file = path.join(dir, entry);
        if (now() - fs.statSync(file).mtimeMs > SWEEP_AFTER_MS) fs.rmSync(file, { force: true });
      }
    } catch {
      // Sweeping is housekeeping only.
    }
  }
  return {
    servedTo: (account, caller) => read<ServedRecord>(`${name('served', account, caller)}.served`),
    recordServed(account, caller, record) {
      write(`${name('served', account, caller)}.served`, record);
      sweep();
    },
    lastRecheck: (account) => read<RecheckRecord>(`${name('recheck', account)}.recheck`),
    recordRecheck: (account, record) => write(`${name('recheck', account)}.recheck`, record),
    lastStoreFailure: (account) => read<StoreFailureRecord>(`${name('failure', account)}.failure`),
    recordStoreFailure: (account, record) => write(`${name('failure', account)}.failure`, record),
    lastRefreshAhead: (account) => read<{ at: number }>(`${name('ahead', account)}.ahead`)?.at,
    recordRefreshAhead: (account, at) => write(`${name('ahead', account)}.ahead`, { at }),
  };
}

export function memoryRotationState(): RotationState {
  const served = new Map<string, ServedRecord>();
  const rechecks = new Map<string, RecheckRecord>();
  const failures = new Map<string, StoreFailureRecord>();
  const ahead = new Map<string, number>();
  return {
    servedTo: (account, caller) => served.get(`${account}\0${caller}`),
    recordServed: (account, caller, record) => void served.set(`${account}\0${caller}`, record),
    lastRecheck: (account) => rechecks.get(account),
    recordRecheck: (account, record) => void rechecks.set(account, record),
    lastStoreFailure: (account) => failures.get(account),
    recordStoreFailure: (account, record) => void (record ? failures.set(account, record) : failures.delete(account)),
    lastRefreshAhead: (account) => ahead.get(account),
    recordRefreshAhead: (account, at) => void ahead.set(account, at),
  };
}
