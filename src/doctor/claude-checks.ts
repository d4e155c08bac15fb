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
} from '../claude/settings.ts';
import { formatDuration } from '../kernel/duration.ts';
import { DEFAULT_CALLER_TTL_MS } from '../claude/helper-ttl.ts';
import { fail, ok, warn, type CheckSpec } from './check.ts';
import type { DoctorDeps, DoctorState } from './state.ts';

const OVERRIDES = ['ANTHROPIC_AUTH_TOKEN', 'ANTHROPIC_API_KEY'] as const;
/** What each does to the helper's key (measured with Claude Code 2.1.197 against the test gateway). */
const OVERRIDE_EFFECT: Record<(typeof OVERRIDES)[number], string> = {
  ANTHROPIC_API_KEY: "Claude Code sends it as x-api-key instead of keybroker's key",
  ANTHROPIC_AUTH_TOKEN: "Claude Code sends it as Authorization: Bearer instead of keybroker's key",
};
const FORCED_LOGIN = ['forceLoginMethod', 'forceLoginOrgUUID'] as const;

export function claudeChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const files = () => (state.claudeFiles ??= readClaudeSettings(deps.env, deps.projectDir, deps.platform));
  return [
    {
      id: 'claude.settings',
      layer: 'claude-code',
      title: 'Claude Code settings',
      timeoutMs: 2_000,
      async run() {
        const all = files();
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
          return warn(
            `no settings file found (looked at ${all.map((file) => file.path).join(', ')})`,
            "run 'keybroker setup --write'",
            details,
          );
        return ok(`read ${read.join(', ')}`, details);
      },
    },
    {
      id: 'claude.overrides',
      layer: 'claude-code',
      title: 'key overrides',
      timeoutMs: 1_000,
      async run() {
        const found = OVERRIDES.flatMap((name) =>
          variableSources(files(), deps.env, name).map((source) => `${name} in ${describeScope(source)}`),
        );
        if (found.length) {
          // Only the names and places: the values are credentials.
          const effects = OVERRIDES.filter((name) => found.some((entry) => entry.startsWith(name))).map((name) => OVERRIDE_EFFECT[name]);
          return fail(
            `${found.join('; ')}: ${effects.join('; ')}`,
            'remove it (unset it in your shell profile, delete it from the settings "env")',
            { overrides: found },
          );
        }
        return ok('neither ANTHROPIC_API_KEY nor ANTHROPIC_AUTH_TOKEN is set in the environment or in settings');
      },
    },
    {
      id: 'claude.forced-login',
      layer: 'claude-code',
      title: 'forced login',
      timeoutMs: 1_000,
      async run() {
        const found = files().flatMap((file) =>
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
      },
    },
    {
      id: 'claude.api-key-helper',
      layer: 'claude-code',
      title: 'apiKeyHelper',
      timeoutMs: 1_000,
      async run() {
        const helper = effectiveSetting(files(), 'apiKeyHelper');
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
        if (!isKeybrokerProgram(program)) {
          return warn(
            `apiKeyHelper in ${where} runs ${program}, not keybroker`,
            "if it is not a wrapper around keybroker, run 'keybroker setup --write --force'",
            details,
          );
        }
        return ok(`${where} runs ${helper.value}`, details);
      },
    },
    {
      id: 'claude.helper-ttl',
      layer: 'claude-code',
      title: 'helper TTL',
      timeoutMs: 1_000,
      async run() {
        const ttl = effectiveVariable(files(), deps.env, 'CLAUDE_CODE_API_KEY_HELPER_TTL_MS');
        const refreshAfterMs = state.config?.profile.cache.refreshAfterMs;
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
      },
    },
  ];
}
