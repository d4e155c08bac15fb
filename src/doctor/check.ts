// One doctor check: a verdict, what was found and what to do, each bounded in time.
export type Verdict = 'OK' | 'WARN' | 'FAIL' | 'SKIP';

type Layer = 'configuration' | 'store' | 'cache' | 'claude-code' | 'gateway';

export interface CheckResult {
  /** Stable id for --json consumers ("store.identity"). */
  id: string;
  layer: Layer;
  title: string;
  verdict: Verdict;
  finding: string;
  /** What to do next; empty when nothing is needed. */
  fix: string;
  ms: number;
  /** Machine-readable facts (never a key); always present in `--json`, empty when the check has none. */
  details: Record<string, unknown>;
  /** For a FAIL: the exit code of the error behind it (the doctor exits with the first one). */
  exitCode?: number;
}

export type CheckOutcome = Omit<CheckResult, 'id' | 'layer' | 'title' | 'ms' | 'details'> & { details?: Record<string, unknown> };

export const ok = (finding: string, details?: Record<string, unknown>): CheckOutcome => ({
  verdict: 'OK',
  finding,
  fix: '',
  ...(details ? { details } : {}),
});
export const warn = (finding: string, fix: string, details?: Record<string, unknown>): CheckOutcome => ({
  verdict: 'WARN',
  finding,
  fix,
  ...(details ? { details } : {}),
});
export const fail = (finding: string, fix: string, details?: Record<string, unknown>): CheckOutcome => ({
  verdict: 'FAIL',
  finding,
  fix,
  ...(details ? { details } : {}),
});
export const skip = (finding: string, fix = ''): CheckOutcome => ({ verdict: 'SKIP', finding, fix });

export interface CheckSpec {
  id: string;
  layer: Layer;
  title: string;
  /** This check's own bound; the doctor's remaining budget may cut it shorter. */
  timeoutMs: number;
  run(signal: AbortSignal): Promise<CheckOutcome>;
}

export class CheckTimeout extends Error {}

/** Runs one check within min(its timeout, what is left of the budget); a throw becomes a FAIL. */
export async function runCheck(
  spec: CheckSpec,
  budget: { deadline: number; now(): number },
  describeError: (error: unknown) => CheckOutcome,
): Promise<CheckResult> {
  const started = budget.now();
  const head = { id: spec.id, layer: spec.layer, title: spec.title };
  const left = budget.deadline - started;
  if (left <= 0) {
    return {
      ...head,
      ...skip('not run: the doctor ran out of time', 'fix the checks that timed out above, then run it again'),
      ms: 0,
      details: {},
    };
  }
  const limit = Math.min(spec.timeoutMs, left);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new CheckTimeout(`no answer within ${limit} ms`));
      reject(new CheckTimeout(`no answer within ${limit} ms`));
    }, limit);
  });
  let outcome: CheckOutcome;
  try {
    outcome = await Promise.race([spec.run(controller.signal), timeout]);
  } catch (error) {
    outcome = describeError(error);
  } finally {
    clearTimeout(timer);
  }
  return { ...head, ...outcome, ms: Math.round(budget.now() - started), details: outcome.details ?? {} };
}
