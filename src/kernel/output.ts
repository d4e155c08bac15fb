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
    if (stdoutWasClosed()) {
      throw new OutputFailed(
        'standard output is closed; nothing was delivered',
        'run keybroker with its output going somewhere (Claude Code reads it through a pipe)',
      );
    }
    try {
      writeAll(1, text);
    } catch (error) {
      throw outputFailed(error);
    }
  },
  stderr: (line) => {
    try {
      writeAll(2, line.endsWith('\n') ? line : `${line}\n`);
    } catch {
      // Nowhere left to say it; the exit code still does.
    }
  },
};

function outputFailed(error: unknown): OutputFailed {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EPIPE') {
    return new OutputFailed(
      'cannot write to standard output (EPIPE: the program reading it has closed the pipe); nothing was delivered',
      'keep the reading end open until keybroker exits',
    );
  }
  const why =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the disk it goes to is full'
      : code === 'EROFS'
        ? 'it goes to a read-only file system'
        : `${code ?? (error as Error).message}`;
  return new OutputFailed(
    `cannot write to standard output (${why}); nothing was delivered`,
    'free space where the output goes, or send it elsewhere',
  );
}

let closedAtStart: boolean | undefined;

/**
 * Whether fd 1 was closed when the process started (`get >&-`). Node then puts /dev/null on it,
 * opened read-write; a shell's `>/dev/null` opens it write-only, a choice to discard that is
 * honoured. Linux only (the open mode is in /proc); the same read-write /dev/null given by a
 * parent (Node's stdio 'ignore', Python's DEVNULL) cannot be told apart and counts as closed.
 * Costs one fstat (two stats and a /proc read only when fd 1 is a character device).
 */
function stdoutWasClosed(): boolean {
  if (closedAtStart !== undefined) return closedAtStart;
  closedAtStart = false;
  if (process.platform !== 'linux') return closedAtStart;
  try {
    const stdout = fs.fstatSync(1);
    if (!stdout.isCharacterDevice() || stdout.rdev !== fs.statSync('/dev/null').rdev) return closedAtStart;
    // Stryker disable next-line Regex,StringLiteral: equivalent, fdinfo has one "flags:<tab>octal" line; readFileSync's '' encoding is utf8's text
    const flags = /^flags:\s*([0-7]+)$/m.exec(fs.readFileSync('/proc/self/fdinfo/1', 'utf8'));
    // O_ACCMODE (3) = O_RDWR (2): how Node reopens a closed standard descriptor.
    // Stryker disable next-line ConditionalExpression: equivalent, no flags line throws in parseInt's read and the catch says not closed
    closedAtStart = flags !== null && (parseInt(flags[1]!, 8) & 3) === 2;
  } catch (error) {
    closedAtStart = (error as NodeJS.ErrnoException).code === 'EBADF';
  }
  return closedAtStart;
}

/** Synchronous, so that an exit right after cannot cut the output short. */
function writeAll(fd: number, text: string): void {
  // Stryker disable next-line StringLiteral: equivalent, Buffer.from's default encoding is utf8
  const buffer = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < buffer.length) {
    try {
      offset += fs.writeSync(fd, buffer, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw error;
    }
  }
}

/**
 * The one mask for text from outside (a store's or gateway's error, an identity provider's
 * description, a library's trace) before it reaches stderr, doctor's report, an admin summary or
 * the audit: the values the caller knows, anything `sk-`/`key-`/`token-` prefixed, and any long
 * run of letters and digits, whatever its prefix (gateway keys, JWTs, tokens of any vendor).
 * Request ids and other long identifiers are masked too: a line that says less is the safe side.
 * Mask before cutting a line short: a key cut in half is no longer recognised.
 */
// Stryker disable next-line ArrayDeclaration: equivalent, a default's words matter only in a text holding them
export function maskSecrets(text: string, known: string[] = []): string {
  let masked = text;
  for (const secret of known) if (secret.length >= 4) masked = masked.split(secret).join('‹key›');
  // `key-`/`token-` only with a digit after: `key-helper` and `token-endpoint` are words, not keys.
  masked = masked.replace(
    /\b(?:sk-[A-Za-z0-9_-]{6,}|(?:key|token)-(?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{6,})/gi,
    (match) => `${match.slice(0, 3)}…`,
  );
  return masked.replace(/[A-Za-z0-9_\-+/=]{16,}/g, maskRun);
}

/** One run of key characters; in `NAME_OF_VARIABLE=value` the name stays and the value is judged alone. */
function maskRun(run: string): string {
  const assignment = /^([A-Z][A-Z0-9]*_[A-Z0-9_]*=)([^=].*)/.exec(run);
  if (!assignment) return looksLikeKey(run) ? '…' : run;
  const value = assignment[2]!;
  return assignment[1] + (value.length >= 16 && looksLikeKey(value) ? '…' : value);
}

/**
 * A run of 16 or more key characters (letters, digits, `_-+/=`) holding both a letter and a digit,
 * unless it reads as a path (every `/`-separated part shorter than 16: `invalid/v1/models`; in an
 * absolute path, shorter than 24: `/tmp/kb-doctor-i6HSRA/`) or a model name (lower-case words and
 * numbers joined by `-`: `claude-sonnet-4-5-20250929`). Messages must keep naming files and models.
 */
function looksLikeKey(run: string): boolean {
  if (!/\d/.test(run) || !/[A-Za-z]/.test(run)) return false;
  const parts = run.split('/');
  const longestPart = run.startsWith('/') ? 24 : 16;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: equivalent, one part is the whole run, 16 or more long, so every() is false
  if (parts.length > 1 && parts.every((part) => part.length < longestPart)) return false;
  return !/^(?:[a-z]+|\d+)(?:-(?:[a-z]+|\d+))+$/.test(run);
}
