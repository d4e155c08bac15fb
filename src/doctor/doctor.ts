// Part src/doctor/: doctor: one check per layer, each bounded. May use: kernel, providers, secret, config, loader, cache, claude, gateway, broker, sso.
// `keybroker doctor`: every layer's checks in order, each bounded, the whole run bounded, as
// one report that the edge prints as text or JSON. The key never leaves memory.
import { KeybrokerError, oneLine, ExitCode } from '../kernel/errors.ts';
import { maskSecrets } from '../kernel/output.ts';
import { CheckTimeout, fail, runCheck, type CheckOutcome, type CheckResult, type CheckSpec, type Verdict } from './check.ts';
import { configChecks } from './config-checks.ts';
import { storeChecks, storeErrorOutcome } from './store-checks.ts';
import { cacheChecks } from './cache-checks.ts';
import { ssoChecks } from './sso-checks.ts';
import { claudeChecks } from './claude-checks.ts';
import { surfaceChecks } from './surface-checks.ts';
import { gatewayChecks } from './gateway-checks.ts';
import type { DoctorDeps, DoctorState } from './state.ts';

/** The whole doctor's bound: checks still waiting when it runs out are skipped. */
export const DOCTOR_BUDGET_MS = 13_000;

export interface DoctorReport {
  /** Version of this document's shape. */
  schema: 1;
  ok: boolean;
  profile?: string;
  summary: Record<Verdict, number>;
  ms: number;
  checks: CheckResult[];
}

export async function runDoctor(
  deps: DoctorDeps,
  onResult: (result: CheckResult) => void = () => {},
  budgetMs = DOCTOR_BUDGET_MS,
): Promise<DoctorReport> {
  const state: DoctorState = {};
  const started = deps.now();
  const budget = { deadline: started + budgetMs, now: deps.now };
  const specs: CheckSpec[] = [
    ...configChecks(deps, state),
    ...storeChecks(deps, state),
    ...ssoChecks(deps, state),
    ...cacheChecks(deps, state),
    ...claudeChecks(deps, state),
    ...surfaceChecks(deps, state),
    ...gatewayChecks(deps, state),
  ];
  const checks: CheckResult[] = [];
  for (const spec of specs) {
    // An oidc profile has an identity provider where a store profile has a store: one set of checks or the other.
    const sso = state.config?.profile.oidc !== undefined;
    if (state.config && (spec.id.startsWith('sso.') ? !sso : sso && spec.id.startsWith('store.'))) continue;
    const result = await runCheck(spec, budget, (error) => describeError(spec, error, state));
    // Defence in depth: whatever a check wrote, the key itself never reaches the report.
    const clean = scrub(result, state.key);
    deps.debug(`check ${clean.id}: ${clean.verdict} in ${clean.ms} ms`);
    checks.push(clean);
    onResult(clean);
  }
  const summary: Record<Verdict, number> = { OK: 0, WARN: 0, FAIL: 0, SKIP: 0 };
  for (const check of checks) summary[check.verdict]++;
  const report: DoctorReport = { schema: 1, ok: summary.FAIL === 0, summary, ms: Math.round(deps.now() - started), checks };
  if (state.config) report.profile = state.config.profile.name;
  return report;
}

function describeError(spec: CheckSpec, error: unknown, state: DoctorState): CheckOutcome {
  if (error instanceof CheckTimeout) {
    if (spec.layer === 'store') state.storeBlocked ??= `the store ${error.message}`;
    if (spec.layer === 'gateway') state.gatewayDown ??= `the gateway ${error.message}`;
    const what =
      spec.layer === 'cache' ? 'the cache' : spec.layer === 'gateway' ? 'the gateway' : spec.layer === 'store' ? 'the store' : 'this check';
    return {
      ...fail(
        `${what} gave ${error.message}`,
        spec.layer === 'cache'
          ? 'unlock the keychain, or set "cache": {"backend": "file"}'
          : 'check your network or VPN and that the server is up',
      ),
      exitCode: ExitCode.storeUnreachable,
    };
  }
  if (error instanceof KeybrokerError) return storeErrorOutcome(error);
  return {
    ...fail(
      `unexpected error: ${oneLine(error instanceof Error ? error.message : String(error)).slice(0, 300)}`,
      'run again with --verbose and report it',
    ),
    exitCode: ExitCode.internal,
  };
}

/** A check's result masked: a store's or gateway's error may quote a key, even one doctor never read. */
function scrub(result: CheckResult, key: string | undefined): CheckResult {
  return JSON.parse(maskSecrets(JSON.stringify(result), key ? [key] : [])) as CheckResult;
}

/** 0 when nothing failed; otherwise the exit code behind the first failure (1 when none is known). */
export function doctorExitCode(report: DoctorReport): number {
  const first = report.checks.find((check) => check.verdict === 'FAIL');
  if (!first) return ExitCode.ok;
  return first.exitCode ?? ExitCode.internal;
}

const LABELS: Record<Verdict, string> = { OK: '[ OK ]', WARN: '[WARN]', FAIL: '[FAIL]', SKIP: '[SKIP]' };
const COLORS: Record<Verdict, string> = { OK: '\x1b[32m', WARN: '\x1b[33m', FAIL: '\x1b[31m', SKIP: '\x1b[2m' };

/** One line per check: verdict, title, finding, and the fix after an arrow. */
export function formatCheck(check: CheckResult, color: boolean): string {
  const label = color ? `${COLORS[check.verdict]}${LABELS[check.verdict]}\x1b[0m` : LABELS[check.verdict];
  const fix = check.fix && check.verdict !== 'OK' ? ` -> ${check.fix}` : '';
  return `${label} ${check.title}: ${check.finding}${fix}`;
}

export function formatSummary(report: DoctorReport): string {
  const { summary } = report;
  const verdict = report.ok ? (summary.WARN ? 'no failures, some warnings' : 'all good') : `${summary.FAIL} failed`;
  return `doctor: ${verdict} (${summary.OK} ok, ${summary.WARN} warn, ${summary.FAIL} fail, ${summary.SKIP} skipped) in ${(report.ms / 1000).toFixed(1)} s`;
}
