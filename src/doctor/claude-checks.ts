// Layer 4: Claude Code on this machine, as it would read its settings and environment.
import fs from 'node:fs';
import path from 'node:path';
import {
  describeScope,
  effectiveSetting,
  effectiveVariable,
  helperProgram,
  isKeybrokerProgram,
  readClaudeSettings,
  variableSources,
  type SettingsFile,
} from '../claude/settings.ts';
import { formatDuration } from '../kernel/duration.ts';
import { DEFAULT_CALLER_TTL_MS } from '../claude/helper-ttl.ts';
import { fail, ok, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from './state.ts';

const OVERRIDES = ['ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_API_KEY'] as const;
/** What each does to the helper's key (measured with Claude Code 2.1.197 against the test gateway). */
const OVERRIDE_EFFECT: Record<(typeof OVERRIDES)[number], string> = {
  ANTHROPIC_API_KEY: "Claude Code sends it as x-api-key instead of keybroker's key",
  ANTHROPIC_AUTH_TOKEN: "Claude Code sends it as Authorization: Bearer instead of keybroker's key",
};
const FORCED_LOGIN = ['forceLoginMethod', 'forceLoginOrgUUID'] as const;

/** The Claude Code checks in order, each a function below over one shared context. */
export function claudeChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const context: CheckContext = { deps, state };
  const check = (id: string, title: string, timeoutMs: number, run: (context: CheckContext) => CheckOutcome): CheckSpec => ({
    id,
    layer: 'claude-code',
    title,
    timeoutMs,
    run: async () => run(context),
  });
  return [
    check('claude.settings', 'Claude Code settings', 2_000, checkSettingsFiles),
    check('claude.overrides', 'key overrides', 1_000, checkKeyOverrides),
    check('claude.forced-login', 'forced login', 1_000, checkForcedLogin),
    check('claude.api-key-helper', 'apiKeyHelper', 1_000, checkApiKeyHelper),
    check('claude.helper-ttl', 'helper TTL', 1_000, checkHelperTtl),
  ];
}

/** Claude Code's settings files, read once and shared with the gateway checks. */
function settingsFiles({ deps, state }: CheckContext): SettingsFile[] {
  state.claudeFiles ??= readClaudeSettings(deps.env, deps.projectDir, deps.platform);
  return state.claudeFiles;
}

/** Every settings file Claude Code reads parses (it ignores one it cannot), and at least one exists. */
export function checkSettingsFiles(context: CheckContext): CheckOutcome {
  const all = settingsFiles(context);
  const broken = all.filter((file) => file.error);
  const read = all.filter((file) => file.data).map((file) => `${file.scope} ${file.path}`);
  const details = { files: all.map((file) => ({ scope: file.scope, path: file.path, exists: file.exists, error: file.error })) };
  if (broken.length) {
    return fail(
      broken.map((file) => `${file.scope} settings ${file.path}: ${file.error}`).join('; '),
      'fix the JSON (Claude Code ignores a file it cannot parse)',
      details,
    );
  }
  if (!read.length)
    return warn(`no settings file found (looked at ${all.map((file) => file.path).join(', ')})`, "run 'keybroker setup --write'", details);
  return ok(`read ${read.join(', ')}`, details);
}

/** No ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN, in the environment or settings, takes the helper's place. */
export function checkKeyOverrides(context: CheckContext): CheckOutcome {
  const found = OVERRIDES.flatMap((name) =>
    variableSources(settingsFiles(context), context.deps.env, name).map((source) => `${name} in ${describeScope(source)}`),
  );
  if (found.length) {
    // Only the names and places: the values are credentials.
    const effects = OVERRIDES.filter((name) => found.some((entry) => entry.startsWith(name))).map((name) => OVERRIDE_EFFECT[name]);
    return fail(
      `${found.join('; ')}: ${effects.join('; ')}`,
      'remove it (unset it in your shell profile, delete it from the settings "env")',
      {
        overrides: found,
      },
    );
  }
  return ok('neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN is set in the environment or in settings');
}

/** No settings file forces a claude.ai/Console login, which makes Claude Code ignore the helper. */
export function checkForcedLogin(context: CheckContext): CheckOutcome {
  const found = settingsFiles(context).flatMap((file) =>
    FORCED_LOGIN.filter((key) => file.data && file.data[key] !== undefined).map(
      (key) => `${key}=${JSON.stringify(file.data![key])} in ${file.scope} settings ${file.path}`,
    ),
  );
  if (found.length) {
    return fail(
      `${found.join('; ')}: Claude Code then insists on a claude.ai/Console login and does not use the helper's key`,
      'ask your admin to remove it from the managed settings for gateway users (or remove it from your own file)',
      { forced: found },
    );
  }
  return ok('no forceLoginMethod or forceLoginOrgUUID');
}

/** The effective apiKeyHelper runs an absolute, existing, executable file that is keybroker. */
function checkApiKeyHelper(context: CheckContext): CheckOutcome {
  const helper = effectiveSetting(settingsFiles(context), 'apiKeyHelper');
  if (!helper)
    return fail(
      'no settings file sets apiKeyHelper: Claude Code never calls keybroker',
      "run 'keybroker setup --write' (or ask your admin for the managed settings)",
    );
  const where = describeScope(helper);
  if (typeof helper.value !== 'string' || helper.value.trim() === '')
    return fail(`apiKeyHelper in ${where} is not a command string`, "run 'keybroker setup --write'");
  const program = helperProgram(helper.value);
  const details = { command: helper.value, program, scope: helper.scope, path: helper.path };
  if (!path.isAbsolute(program)) {
    return fail(
      `apiKeyHelper in ${where} runs "${program}", a relative path: Claude Code runs it from the project folder or from /`,
      `use the absolute path ('keybroker setup' prints it)`,
      details,
    );
  }
  const unusable = programProblem(program, where, details);
  if (unusable) return unusable;
  if (!isKeybrokerProgram(program)) {
    return warn(
      `apiKeyHelper in ${where} runs ${program}, not keybroker`,
      "if it is not a wrapper around keybroker, run 'keybroker setup --write --force'",
      details,
    );
  }
  return ok(`${where} runs ${helper.value}`, details);
}

/** Why Claude Code could not run the helper's program (missing, not a file, not executable); undefined when it can. */
function programProblem(program: string, where: string, details: Record<string, unknown>): CheckOutcome | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(program);
  } catch {
    return fail(
      `apiKeyHelper in ${where} runs ${program}, which does not exist`,
      "install keybroker there, or run 'keybroker setup --write' to point at this one",
      details,
    );
  }
  if (!stat.isFile())
    return fail(`apiKeyHelper in ${where} runs ${program}, which is not a file`, "run 'keybroker setup --write'", details);
  try {
    fs.accessSync(program, fs.constants.X_OK);
  } catch {
    return fail(`apiKeyHelper in ${where} runs ${program}, which is not executable`, `chmod +x ${program}`, details);
  }
  return undefined;
}

/** Claude Code keeps the helper's key no longer than keybroker's refresh interval, so a rotation reaches it in time. */
export function checkHelperTtl(context: CheckContext): CheckOutcome {
  const ttl = effectiveVariable(settingsFiles(context), context.deps.env, 'CLAUDE_CODE_API_KEY_HELPER_TTL_MS');
  const refreshAfterMs = context.state.config?.profile.cache.refreshAfterMs;
  if (!ttl) {
    if (refreshAfterMs !== undefined && DEFAULT_CALLER_TTL_MS > refreshAfterMs) {
      return warn(
        `CLAUDE_CODE_API_KEY_HELPER_TTL_MS unset: Claude Code keeps a key ${formatDuration(DEFAULT_CALLER_TTL_MS)}, longer than keybroker's refresh interval ${formatDuration(refreshAfterMs)}`,
        "set it as 'keybroker setup' prints",
      );
    }
    return ok(
      `CLAUDE_CODE_API_KEY_HELPER_TTL_MS unset: Claude Code's default ${DEFAULT_CALLER_TTL_MS} ms (${formatDuration(DEFAULT_CALLER_TTL_MS)})`,
    );
  }
  const where = describeScope(ttl);
  if (!/^\d+$/.test(ttl.value.trim()) || Number(ttl.value) <= 0) {
    return fail(
      `CLAUDE_CODE_API_KEY_HELPER_TTL_MS=${JSON.stringify(ttl.value)} in ${where} is not a positive whole number of milliseconds`,
      'set it to a number such as 300000, or remove it',
      { value: ttl.value },
    );
  }
  const value = Number(ttl.value);
  if (refreshAfterMs !== undefined && value > refreshAfterMs) {
    return warn(
      `CLAUDE_CODE_API_KEY_HELPER_TTL_MS=${value} (${formatDuration(value)}) in ${where} is longer than keybroker's refresh interval (${formatDuration(refreshAfterMs)}): a rotated key reaches Claude Code late`,
      "lower it as 'keybroker setup' prints",
      { value },
    );
  }
  return ok(`CLAUDE_CODE_API_KEY_HELPER_TTL_MS=${value} (${formatDuration(value)}) in ${where}`, { value });
}
