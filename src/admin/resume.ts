// Finishing rotations a crash (SIGKILL, a lost answer) left half-done, from what the audit log says
// was started: each rotation's first line (before the mint) names the mint's alias, the old key's
// hashed token and its grace; the write's intent names the new key's hashed token. Whatever the
// store holds now decides: the key it holds stays, every other key of that rotation is retired.
import { UsageError } from '../kernel/errors.ts';
import type { KeyIssuer } from '../gateway/key-issuer.ts';
import type { AuditRecord } from './audit.ts';
import { formatDuration } from '../kernel/duration.ts';
import { errorLine, gatewayToken, readStored, type AdminDeps } from './common.ts';

export const MINT_INTENT = 'intent: mint a new key';

/** Rotations of `users` (all, when absent) that the log started and never settled, oldest first. */
function openRotations(history: AuditRecord[], users?: Set<string>): AuditRecord[][] {
  const steps = new Map<string, AuditRecord[]>();
  for (const record of history) {
    if (!record.step || (record.action !== 'rotate' && record.action !== 'revoke')) continue;
    const lines = steps.get(record.step) ?? [];
    lines.push(record);
    steps.set(record.step, lines);
  }
  return [...steps.values()].filter((lines) => {
    const intent = lines[0]!;
    if (intent.outcome !== MINT_INTENT || (users && !users.has(intent.user))) return false;
    if (lines.some((line) => line.settled)) return false;
    // Nothing to retire: a stored write ends it.
    return !(
      intent.oldToken === undefined &&
      lines.some((line) => line.outcome === 'created' || line.outcome === 'updated' || line.outcome === 'unchanged')
    );
  });
}

/** Settles every open rotation of `users`; the number settled. Needs a file audit log. */
export async function resumeRotations(deps: AdminDeps, users?: Set<string>): Promise<number> {
  if (!deps.audit.history)
    throw new UsageError(
      '--resume needs the audit log of the rotation it finishes',
      'pass the same --audit-log FILE (with the audit on stderr there is nothing to resume from)',
    );
  if (!deps.issuer)
    throw new UsageError('--resume needs the profile\'s gateway key API ("keyIssuer")', 'run it with the profile the rotation used');
  const open = openRotations(deps.audit.history(), users);
  for (const lines of open) await settleRotation(deps, deps.issuer, lines);
  return open.length;
}

async function settleRotation(deps: AdminDeps, issuer: KeyIssuer, lines: AuditRecord[]): Promise<void> {
  const intent = lines[0]!;
  const { user, secret, step, alias, oldToken } = intent;
  const graceMs = intent.graceMs ?? 0;
  const token = lines.find((line) => line.token)?.token;
  const line = { action: 'rotate' as const, user, secret, ...(step ? { step } : {}), gateway: issuer.describe() };
  try {
    const held = (await readStored(deps, secret)).current;
    const heldToken = held ? gatewayToken(held.key) : undefined;
    let minted: string;
    if (token && heldToken === token) minted = 'the store holds the minted key';
    else if (token)
      minted = (await issuer.revoke([token]))
        ? 'the store does not hold the minted key: deleted at the gateway'
        : 'the store does not hold the minted key, unknown to the gateway';
    else
      minted =
        alias && (await issuer.revokeAlias(user, alias))
          ? 'the minted key was never stored: found by its alias and deleted'
          : 'no key was minted under its alias';
    let previous = 'no old key';
    if (oldToken && oldToken === heldToken) previous = 'the old key is still the stored one, unchanged';
    else if (oldToken) {
      const retired = await issuer.retire(oldToken, graceMs);
      previous =
        retired === 'unknown'
          ? 'the old key is unknown to the gateway'
          : graceMs > 0
            ? `the old key expires at the gateway in ${formatDuration(graceMs)}`
            : 'the old key was deleted at the gateway';
    }
    deps.audit.record({ ...line, settled: true, outcome: `resumed: ${minted}; ${previous}` });
    deps.output.stdout(`${user}: finished an interrupted rotation (step ${step}): ${minted}; ${previous}\n`);
  } catch (error) {
    deps.audit.record({ ...line, outcome: `failed: resume: ${errorLine(error)}` });
    throw error;
  }
}
