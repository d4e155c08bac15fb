// `admin import`: many developers' keys from CSV (`user,key[,expires_at]`) or JSON. Everything is
// validated before anything is written; a re-run skips keys that are already current.
import { parse } from 'csv-parse/sync';
import { KeybrokerError, UsageError } from '../kernel/errors.ts';
import { keyProblem } from '../secret/value.ts';
import { userNameProblem } from '../secret/name.ts';
import { parseExpiry, writeKey, type AdminDeps, type KeyWrite, type WriteOutcome } from './common.ts';

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
    const userProblem = userNameProblem(user);
    if (userProblem) problems.push(`${where}: the user name ${JSON.stringify(user)} cannot be used: ${userProblem}`);
    const problem = keyProblem(key);
    if (problem) problems.push(`${where}: the key${userProblem ? '' : ` for ${user}`} is not usable: ${problem}`);
    let expiresAt: Date | undefined;
    if (expires !== '') {
      try {
        expiresAt = parseExpiry(expires, `the expires_at`);
      } catch {
        problems.push(`${where}: expires_at ${JSON.stringify(expires.slice(0, 40))} is not an RFC 3339 time such as 2026-12-31T23:59:59Z`);
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

type Candidates = { items: { where: string; fields: string[] }[] } | { problem: string };

function csvCandidates(text: string): Candidates {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, { info: true, relax_column_count: true, skip_empty_lines: true, comment: '#', trim: false, bom: true }) as unknown as typeof records;
  } catch (error) {
    const lines = (error as { lines?: number }).lines;
    const reason = (error as Error).message.replace(/^Invalid [^:]*: /, '').replace(/sk-[A-Za-z0-9_-]{4,}/g, 'sk-…');
    return { problem: `${lines ? `line ${lines}: ` : ''}not valid CSV (${reason.split('\n')[0]})` };
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
  } catch (error) {
    return { problem: `not valid JSON (${(error as Error).message.replace(/sk-[A-Za-z0-9_-]{4,}/g, 'sk-…')})` };
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

/** Validates everything, then writes one by one; a failure names who was and was not written. */
export async function importKeys(deps: AdminDeps, text: string, format: 'csv' | 'json', source: string): Promise<ImportSummary> {
  const { rows, problems } = parseImport(text, format);
  if (problems.length) {
    for (const problem of problems) deps.output.stderr(`keybroker: ${source}: ${problem}`);
    throw new UsageError(`${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'} (listed above); nothing was written`, 'fix those lines and run the import again');
  }
  const summary: ImportSummary = { written: [], unchanged: [] };
  for (const [index, row] of rows.entries()) {
    // Each progress line replaces the one before it (cursor up, erase line).
    if (deps.isTTY) deps.output.stderr(`${index ? '\x1b[1A\x1b[2K' : ''}${progressBar(index, rows.length)} ${row.user}`);
    let result: WriteOutcome;
    try {
      result = await writeKey(deps, row, 'import');
    } catch (error) {
      const done = [...summary.written, ...summary.unchanged].map((outcome) => outcome.user);
      const left = rows.slice(index).map((pending) => pending.user);
      deps.output.stderr(`keybroker: import stopped at ${row.user} (${row.where}): ${error instanceof KeybrokerError ? error.line() : (error as Error).message}`);
      deps.output.stderr(`keybroker: written or already current (${done.length}): ${done.join(', ') || 'none'}`);
      deps.output.stderr(`keybroker: not written (${left.length}): ${left.join(', ')}`);
      deps.output.stderr(`keybroker: fix the cause and run the same import again: keys already current are not written twice`);
      throw error;
    }
    (result.outcome === 'unchanged' ? summary.unchanged : summary.written).push(result);
  }
  if (deps.isTTY && rows.length) deps.output.stderr(`\x1b[1A\x1b[2K${progressBar(rows.length, rows.length)}`);
  const created = summary.written.filter((result) => result.outcome === 'created').length;
  deps.output.stdout(
    `imported ${rows.length} key${rows.length === 1 ? '' : 's'} from ${source}: ${created} created, ${summary.written.length - created} new versions, ${summary.unchanged.length} unchanged\n`,
  );
  return summary;
}

function progressBar(done: number, total: number): string {
  const width = 30;
  const filled = Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}`;
}
