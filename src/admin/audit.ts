// One line per admin action (who, what, which user, which version, when), never a key: to
// stderr, or appended to a file the admin keeps. A step that changes something is written as an
// intent first (flushed to disk before the step runs), then its outcome under the same step id,
// so a crash at any point leaves a line that says what may have happened and a re-run can finish it.
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../kernel/errors.ts';
import type { Output } from '../kernel/output.ts';

export interface AuditRecord {
  action: 'put' | 'import' | 'rotate' | 'revoke' | 'purge';
  user: string;
  secret: string;
  /** The store's version written, or the one revoked. */
  version?: string;
  outcome: string;
  /** The gateway involved, for rotations and revocations through it. */
  gateway?: string;
  /** Ties an intent to its outcome lines: one id per developer per action. */
  step?: string;
  /** The alias a mint asks the gateway for (unique there): how an unanswered mint is found again. */
  alias?: string;
  /** The gateway's hashed token (SHA-256 hex) of the key minted or stored by this step: never the key. */
  token?: string;
  /** The hashed token of the key this step replaces, retired once the new one is stored. */
  oldToken?: string;
  /** The grace the old key gets when it is retired. */
  graceMs?: number;
  /** This line ends its step: nothing is left for --resume to finish. */
  settled?: true;
}

export interface AuditLog {
  /** Written and flushed before it returns; a log that cannot be written throws (ConfigError), so the step does not run. */
  record(entry: AuditRecord): void;
  /** Earlier records of a file log (for --resume); undefined when the audit goes to stderr. */
  history?(): AuditRecord[];
}

/** A new step id: the intent and its outcome lines carry it. */
export function newStepId(): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export function auditLog(options: { file?: string; output: Output; actor: () => string; now: () => number }): AuditLog {
  const file = options.file;
  const line = (entry: AuditRecord) => JSON.stringify({ time: new Date(options.now()).toISOString(), actor: options.actor(), ...entry });
  if (!file) return { record: (entry) => options.output.stderr(`keybroker: audit ${line(entry)}`) };
  try {
    fs.closeSync(fs.openSync(file, 'a', 0o600));
  } catch (error) {
    throw new ConfigError(
      `cannot open the audit log ${file} (${(error as NodeJS.ErrnoException).code})`,
      'choose a writable --audit-log path',
    );
  }
  return {
    record: (entry) => appendFlushed(file, `${line(entry)}\n`),
    history: () => readHistory(file),
  };
}

/** Appends and fsyncs; any failure names the file and the disk's problem, before the step it describes runs. */
function appendFlushed(file: string, text: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'a', 0o600);
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why =
      code === 'ENOSPC'
        ? 'the disk holding it is full'
        : code === 'EROFS'
          ? 'its file system is read-only'
          : code === 'EDQUOT'
            ? 'the disk quota is used up'
            : 'it cannot be written';
    throw new ConfigError(
      `cannot write the audit log ${file}: ${why} (${code}); the action stopped before its next change, and every change made so far has its line`,
      code === 'ENOSPC' || code === 'EDQUOT'
        ? `free space on the disk of ${file} (or choose another --audit-log) and run the same command again`
        : 'choose a writable --audit-log and run the same command again',
    );
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function readHistory(file: string): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (const text of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!text.trim()) continue;
    try {
      records.push(JSON.parse(text) as AuditRecord);
    } catch {
      // A line cut by a crash or a full disk says nothing reliable: the lines around it still do.
    }
  }
  return records;
}
