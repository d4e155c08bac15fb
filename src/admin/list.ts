// `admin list`: one row per developer from the store's own listing (its paging), never a key.
import { formatDuration } from '../kernel/duration.ts';
import type { SecretSummary } from '../../providers/provider.ts';
import { EXPIRES_LABEL, ROTATED_LABEL, templatePrefix, userFromSecretName, type AdminDeps } from './common.ts';

export interface KeyRow {
  user: string;
  secret: string;
  version: string | null;
  created: string | null;
  lastRotated: string | null;
  expires: string | null;
  ageDays: number | null;
  enabled: boolean;
  flags: ('revoked' | 'expired' | 'expiring' | 'stale')[];
}

export interface ListPolicy {
  /** A key older than this is stale. */
  maxAgeMs: number;
  /** A key expiring within this is flagged. */
  expiringWithinMs: number;
}

export async function listKeys(deps: Pick<AdminDeps, 'provider' | 'profile' | 'now'>, policy: ListPolicy): Promise<KeyRow[]> {
  const rows: KeyRow[] = [];
  for await (const summary of deps.provider.list(templatePrefix(deps.profile.secret))) {
    const user = userFromSecretName(deps.profile.secret, summary.name);
    if (!user) continue;
    rows.push(rowFor(user, summary, deps.now(), policy));
  }
  return rows.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}

function rowFor(user: string, summary: SecretSummary, now: number, policy: ListPolicy): KeyRow {
  const fromLabel = (name: string) => {
    const seconds = Number(summary.labels[name]);
    return summary.labels[name] && Number.isFinite(seconds) ? new Date(seconds * 1000) : undefined;
  };
  const rotated = fromLabel(ROTATED_LABEL) ?? summary.updatedAt ?? summary.createdAt;
  const expires = fromLabel(EXPIRES_LABEL) ?? summary.expiresAt;
  const flags: KeyRow['flags'] = [];
  if (!summary.enabled) flags.push('revoked');
  if (expires && expires.getTime() <= now) flags.push('expired');
  else if (expires && expires.getTime() - now <= policy.expiringWithinMs) flags.push('expiring');
  if (rotated && now - rotated.getTime() > policy.maxAgeMs) flags.push('stale');
  const iso = (date: Date | undefined) => (date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : null);
  return {
    user,
    secret: summary.name,
    version: summary.version ?? null,
    created: iso(summary.createdAt),
    lastRotated: iso(rotated),
    expires: iso(expires),
    ageDays: rotated ? Math.floor((now - rotated.getTime()) / 86_400_000) : null,
    enabled: summary.enabled,
    flags,
  };
}

export function renderTable(rows: KeyRow[], now: number): string {
  if (rows.length === 0) return "no keys under this profile's secret template\n";
  const header = ['USER', 'VERSION', 'CREATED', 'LAST ROTATED', 'EXPIRES', 'AGE', 'FLAGS'];
  const day = (text: string | null) => (text ? text.slice(0, 10) : '-');
  const lines = rows.map((row) => [
    row.user,
    row.version ? (row.version.length > 12 ? `${row.version.slice(0, 12)}…` : row.version) : '-',
    day(row.created),
    day(row.lastRotated),
    day(row.expires),
    row.lastRotated ? formatDuration(now - Date.parse(row.lastRotated)) : '-',
    row.flags.join(',') || '-',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const format = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  const flagged = rows.filter((row) => row.flags.length).length;
  return `${[format(header), ...lines.map(format), `${rows.length} developer${rows.length === 1 ? '' : 's'}, ${flagged} flagged`].join('\n')}\n`;
}
