// `keybroker doctor`: the rollout checklist, run on the developer's own machine.
import path from 'node:path';
import { osLoginName } from '../../kernel/login-name.ts';
import type { Command } from '../command.ts';
import { runDoctor, doctorExitCode, formatCheck, formatSummary, DOCTOR_BUDGET_MS } from '../../doctor/doctor.ts';
import { keychainCache } from '../../cache/keychain.ts';
import { openProvider } from '../../loader/open-store.ts';
import { UsageError } from '../../kernel/errors.ts';

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'check every layer (config, store, cache, Claude Code, gateway) and say what to fix',
  help: `Usage: keybroker doctor [--profile NAME] [--json] [--model NAME]... [--gateway URL] [--project DIR]

Runs the rollout checklist on this machine, one line per check, in order:
  configuration  files read, validation, the profile in use
  store          reachable, who you are to it, the secret's name, readable, usable, version, expiry
  cache          backend chosen and why, a write/read/delete round trip, the cached key's age
  claude code    its settings files (managed, user, project): ANTHROPIC_API_KEY/AUTH_TOKEN
                 overrides, forceLoginMethod, apiKeyHelper, CLAUDE_CODE_API_KEY_HELPER_TTL_MS
  gateway        ANTHROPIC_BASE_URL (or --gateway, or the profile's "gateway"): HTTPS, redirects,
                 GET /v1/models, a minimal message per --model, streaming arrives incrementally
Each line is [ OK ], [WARN], [FAIL] or [SKIP] with what was found and what to do ("-> fix").
Each check has its own timeout and the whole run is bounded: at most ${DOCTOR_BUDGET_MS / 1000} s, even with everything down.
Never prints the key: only its fingerprint (sha256:…).

Options:
  --json            one JSON document: {schema, ok, profile, summary, ms, checks: [{id, layer,
                    title, verdict, finding, fix, ms, details}]}; details is always
                    present ({} when a check has no facts to add)
  --model NAME      send the test message to this model (repeatable; default: ANTHROPIC_MODEL,
                    else the first model the gateway lists)
  --gateway URL     check this gateway instead of ANTHROPIC_BASE_URL. Your key goes only to an
                    address you chose: one from the project's .claude/settings*.json is named but
                    not contacted (pass it here to test it), and never over plain HTTP to
                    another machine
  --project DIR     read Claude Code's project settings from DIR/.claude (default: this folder)

Exit code: 0 when no check failed; otherwise the code of the first failure (see keybroker --help).

Examples:
  keybroker doctor
  keybroker doctor --model claude-sonnet-4-5 --model claude-haiku-4-5
  keybroker doctor --json | jq '.checks[] | select(.verdict == "FAIL")'
  KEYBROKER_DEBUG=1 keybroker doctor --profile eu`,
  options: {
    json: { type: 'boolean' },
    model: { type: 'string', multiple: true },
    gateway: { type: 'string' },
    project: { type: 'string' },
  },
  async run(values, _positionals, context) {
    const models = (values['model'] as string[] | undefined) ?? [];
    if (models.some((model) => !model.trim())) throw new UsageError('doctor: --model needs a model name', "run 'keybroker doctor --help'");
    const json = values['json'] === true;
    const color = context.isTTY && !json && !context.env['NO_COLOR'];
    const configRequest: Parameters<typeof runDoctor>[0]['configRequest'] = { env: context.env };
    if (typeof values['config'] === 'string') configRequest.configFlag = path.resolve(values['config']);
    if (typeof values['profile'] === 'string') configRequest.profileFlag = values['profile'];
    const report = await runDoctor(
      {
        env: context.env,
        configRequest,
        projectDir: path.resolve(typeof values['project'] === 'string' ? values['project'] : process.cwd()),
        platform: process.platform,
        now: context.now,
        osUser: () => osLoginName(context.env),
        openProvider: (config, timeoutMs) => openProvider({ ...config.profile, timeoutMs }, { env: context.env, debug: context.debug }),
        keychain: () => keychainCache({ env: context.env }),
        fetch: globalThis.fetch,
        ...(typeof values['gateway'] === 'string' ? { gateway: values['gateway'] } : {}),
        models,
        debug: context.debug,
      },
      // Text is printed as each check finishes, so a slow check shows where it is.
      (check) => {
        if (!json) context.output.stdout(`${formatCheck(check, color)}\n`);
      },
    );
    if (json) context.output.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else context.output.stdout(`${formatSummary(report)}\n`);
    return doctorExitCode(report);
  },
};
