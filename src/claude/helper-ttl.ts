// How long Claude Code keeps a helper's key in each process before it runs the helper again.

/** Claude Code keeps a helper's key this long per process (SPEC §1). */
export const DEFAULT_CALLER_TTL_MS = 300_000;

export function callerTtlMs(env: NodeJS.ProcessEnv): number {
  const value = Number(env['CLAUDE_CODE_API_KEY_HELPER_TTL_MS']);
  return Number.isFinite(value) && value > 0 ? value : DEFAULT_CALLER_TTL_MS;
}
