// Everything keybroker prints goes through here: stdout for results, stderr for people.
import fs from 'node:fs';
import { OutputFailed } from './errors.ts';

export interface Output {
  /** Exactly these bytes on stdout. */
  stdout(text: string): void;
  /** One line on stderr. */
  stderr(line: string): void;
}

export const processOutput: Output = {
  stdout: (text) => {
    try {
      writeAll(1, text);
    } catch (error) {
      throw outputFailed(error);
    }
  },
  stderr: (line) => {
    try {
      writeAll(2, line.endsWith('\n') ? line : line + '\n');
    } catch {
      // Nowhere left to say it; the exit code still does.
    }
  },
};

function outputFailed(error: unknown): OutputFailed {
  const code = (error as NodeJS.ErrnoException).code;
  const why = code === 'ENOSPC' || code === 'EDQUOT' ? 'the disk it goes to is full' : code === 'EROFS' ? 'it goes to a read-only file system' : `${code ?? (error as Error).message}`;
  return new OutputFailed(`cannot write to standard output (${why}); nothing was delivered`, 'free space where the output goes, or send it elsewhere');
}

/** Synchronous, so that an exit right after cannot cut the output short. */
function writeAll(fd: number, text: string): void {
  const buffer = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(fd, buffer, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((error as NodeJS.ErrnoException).code === 'EPIPE') return;
      throw error;
    }
  }
}

/** Masks anything that looks like a key in a debug trace. */
export function maskSecrets(text: string, known: string[] = []): string {
  let masked = text;
  for (const secret of known) if (secret.length >= 4) masked = masked.split(secret).join('‹key›');
  return masked.replace(/\b(sk|key|token)-[A-Za-z0-9_-]{6,}/gi, (match) => `${match.slice(0, 3)}…`);
}
