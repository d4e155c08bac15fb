// `admin import`: many developers' keys from CSV (`user,key[,expires_at]`) or JSON. Everything is
// validated before anything is written; a re-run skips keys that are already current.
import { parse } from 'csv-parse/sync';
import { Interrupted, UsageError } from '../kernel/errors.ts';
import { jsonErrorPosition } from '../kernel/json-position.ts';
import { keyProblem } from '../secret/value.ts';
import { userNameProblem } from '../secret/name.ts';
import { errorLine, looksLikeKey, parseExpiry, writeKey, type AdminDeps, type KeyWrite, type WriteOutcome } from './common.ts';
import { limiterFor, pacedAt, runBulk, terminalProgress } from './bulk.ts';

export interface ImportRow extends KeyWrite {
  /** "line 4" or "entry 3": where the row came from, for messages. */
  where: string;
}

/** Every problem, each naming its line, or the rows; never a key in a message. */
export function parseImport(text: string, format: 'csv' | 'json'): { rows: ImportRow[]; problems: string[] } {
  const candidates = format === 'json' ? jsonCandidates(text) : csvCandidates(text);
  if ('problem' in candidates) return { rows: [], problems: [candidates.problem] };
  const rows: ImportRow[] = [];
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const candidate of candidates.items) {
    const { where, fields } = candidate;
    if (fields.length < 2 || fields.length > 3) {
      problems.push(`${where}: expected user,key[,expires_at] but found ${fields.length} field${fields.length === 1 ? '' : 's'}`);
      continue;
    }
    const [user = '', key = '', expires = ''] = fields.map((field) => field.trim());
    const keyInUserColumn = looksLikeKey(user) || /[A-Za-z0-9_\-+/=]{24,}/.test(user);
    const userProblem = keyInUserColumn ? 'it looks like a key; the columns are user,key[,expires_at]' : userNameProblem(user);
    if (userProblem) problems.push(`${where}: the user name ${shownUser(user)} cannot be used: ${userProblem}`);
    const problem = keyProblem(key);
    if (problem) problems.push(`${where}: the key${userProblem ? '' : ` for ${user}`} is not usable: ${problem}`);
    let expiresAt: Date | undefined;
    if (expires !== '') {
      try {
        expiresAt = parseExpiry(expires, `the expires_at`);
      } catch {
        // Shown only when it cannot be a key (a shifted column would put one here).
        const shown = /^[\w :+./-]{1,30}$/.test(expires) && !/[A-Za-z0-9_-]{16,}/.test(expires) ? ` ${JSON.stringify(expires)}` : '';
        problems.push(`${where}: expires_at${shown} is not an RFC 3339 time such as 2026-12-31T23:59:59Z`);
      }
    }
    if (!userProblem) {
      const earlier = seen.get(user);
      if (earlier) problems.push(`${where}: ${user} is already on ${earlier}; one key per developer`);
      else seen.set(user, where);
    }
    if (!userProblem && !problem) rows.push({ where, user, key, ...(expiresAt ? { expiresAt } : {}) });
  }
  if (candidates.items.length === 0) problems.push('the file has no rows');
  return { rows: problems.length ? [] : rows, problems };
}

const CSV_REASONS: Record<string, string> = {
  INVALID_OPENING_QUOTE: 'a quote inside a field that does not start with one',
  CSV_QUOTE_NOT_CLOSED: 'a quote is never closed',
  CSV_INVALID_CLOSING_QUOTE: 'a closing quote is followed by more characters',
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'rows have different numbers of fields',
};

/** A user field as messages show it: a value that could be a key is never echoed. */
function shownUser(user: string): string {
  return looksLikeKey(user) || /[A-Za-z0-9_\-+/=]{24,}/.test(user) || user.length > 64
    ? '(a value that looks like a key, not shown)'
    : JSON.stringify(user);
}

type Candidates = { items: { where: string; fields: string[] }[] } | { problem: string };

function csvCandidates(text: string): Candidates {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      comment: '#',
      trim: false,
      bom: true,
    }) as unknown as typeof records;
  } catch (error) {
    // csv-parse's message quotes the field it choked on, which may be a key: only its line and code.
    const { lines, code } = error as { lines?: number; code?: string };
    const reason = CSV_REASONS[code ?? ''] ?? (code ? code.toLowerCase().replaceAll('_', ' ') : 'unreadable');
    return { problem: `${lines ? `line ${lines}: ` : ''}not valid CSV (${reason})` };
  }
  const items = records.map(({ record, info }) => ({ where: `line ${info.lines}`, fields: record }));
  // An optional header row.
  if (items[0]?.fields[0]?.trim().toLowerCase() === 'user' && items[0].fields[1]?.trim().toLowerCase() === 'key') items.shift();
  return { items };
}

function jsonCandidates(text: string): Candidates {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // V8's message quotes the text around the error, which may be a key: only line and column.
    const position = jsonErrorPosition(text);
    if (!position) return { problem: 'not valid JSON' };
    const hint = /^\s*[[{]/.test(text) ? '' : ' (it must start with "["; for "user,key" lines use --format csv)';
    return { problem: `line ${position.line}, column ${position.column}: not valid JSON${hint}` };
  }
  if (!Array.isArray(parsed)) return { problem: 'the JSON must be an array of {"user": "...", "key": "...", "expires_at": "..."}' };
  return {
    items: parsed.map((entry: unknown, index) => {
      const where = `entry ${index + 1}`;
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return { where, fields: [] };
      const record = entry as Record<string, unknown>;
      const text = (value: unknown) => (typeof value === 'string' ? value : value === undefined || value === null ? '' : '\u0000');
      const fields = [text(record['user']), text(record['key'])];
      if (record['expires_at'] !== undefined && record['expires_at'] !== null) fields.push(text(record['expires_at']));
      return { where, fields };
    }),
  };
}

export interface ImportSummary {
  written: WriteOutcome[];
  unchanged: WriteOutcome[];
}

/**
 * Validates everything, then writes a bounded, adaptive number of rows at a time (src/admin/bulk.ts).
 * A failure or an interrupt lets the rows in flight finish, then names exactly who was and was not written.
 */
export async function importKeys(deps: AdminDeps, text: string, format: 'csv' | 'json', source: string): Promise<ImportSummary> {
  const { rows, problems } = parseImport(text, format);
  if (problems.length) {
    for (const problem of problems) deps.output.stderr(`keybroker: ${source}: ${problem}`);
    throw new UsageError(
      `${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'} (listed above); nothing was written`,
      'fix those lines and run the import again',
    );
  }
  const limiter = limiterFor(deps.bulk);
  const paced: AdminDeps = { ...deps, provider: limiter.provider(deps.provider, deps.bulk?.relay !== undefined) };
  const progress = terminalProgress(deps.output.stderr, 'import', deps.isTTY);
  const run = await runBulk(rows, (row) => writeKey(paced, row, 'import'), limiter, {
    ...(deps.bulk?.signal ? { signal: deps.bulk.signal } : {}),
    onProgress: (state) => progress.update(state),
  });
  progress.end();

  const summary: ImportSummary = { written: [], unchanged: [] };
  const failed: { row: ImportRow; error: unknown }[] = [];
  const notStarted: ImportRow[] = [];
  for (const [index, status] of run.statuses.entries()) {
    if (status.state === 'done') (status.result.outcome === 'unchanged' ? summary.unchanged : summary.written).push(status.result);
    else if (status.state === 'failed') failed.push({ row: rows[index]!, error: status.error });
    else notStarted.push(rows[index]!);
  }
  const complete = failed.length === 0 && !run.interrupted;
  const created = summary.written.filter((result) => result.outcome === 'created').length;
  if (deps.json) {
    deps.output.stdout(
      `${JSON.stringify({
        action: 'import',
        source,
        complete,
        total: rows.length,
        created,
        updated: summary.written.length - created,
        unchanged: summary.unchanged.length,
        failed: failed.map(({ row, error }) => ({ user: row.user, where: row.where, error: errorLine(error) })),
        notWritten: [...failed.map(({ row }) => row.user), ...notStarted.map((row) => row.user)],
        interrupted: run.interrupted,
        elapsedMs: run.elapsedMs,
        throttles: limiter.state.throttles,
        pacedAt: pacedAt(limiter.state),
      })}\n`,
    );
  }
  if (!complete) {
    const done = [...summary.written, ...summary.unchanged].map((outcome) => outcome.user);
    const left = [...failed.map(({ row }) => row.user), ...notStarted.map((row) => row.user)];
    if (run.interrupted) deps.output.stderr(`keybroker: import interrupted; the writes in flight finished`);
    for (const { row, error } of failed) deps.output.stderr(`keybroker: import stopped at ${row.user} (${row.where}): ${errorLine(error)}`);
    deps.output.stderr(`keybroker: written or already current (${done.length}): ${done.join(', ') || 'none'}`);
    deps.output.stderr(`keybroker: not written (${left.length}): ${left.join(', ')}`);
    deps.output.stderr(
      `keybroker: ${run.interrupted ? 'run' : 'fix the cause and run'} the same import again: keys already current are not written twice`,
    );
    if (run.interrupted)
      throw new Interrupted(
        `import from ${source} interrupted: ${done.length} written or already current, ${left.length} not written`,
        'run the same import again to write the rest',
      );
    throw failed[0]!.error;
  }
  if (!deps.json) {
    deps.output.stdout(
      `imported ${rows.length} key${rows.length === 1 ? '' : 's'} from ${source}: ${created} created, ${summary.written.length - created} new versions, ${summary.unchanged.length} unchanged${limiter.state.throttles ? ` (throttled ${limiter.state.throttles} times, slowed down)` : ''}\n`,
    );
  }
  return summary;
}
