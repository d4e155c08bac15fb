// One line per admin action (who, what, which user, which version, when), never a key: to
// stderr, or appended to a file the admin keeps.
import fs from 'node:fs';
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
}

export interface AuditLog {
  record(entry: AuditRecord): void;
}

export function auditLog(options: { file?: string; output: Output; actor: () => string; now: () => number }): AuditLog {
  if (options.file) {
    try {
      fs.closeSync(fs.openSync(options.file, 'a', 0o600));
    } catch (error) {
      throw new ConfigError(`cannot open the audit log ${options.file} (${(error as NodeJS.ErrnoException).code})`, 'choose a writable --audit-log path');
    }
  }
  return {
    record(entry) {
      const line = JSON.stringify({ time: new Date(options.now()).toISOString(), actor: options.actor(), ...entry });
      if (options.file) fs.appendFileSync(options.file, line + '\n', { mode: 0o600 });
      else options.output.stderr(`keybroker: audit ${line}`);
    },
  };
}
