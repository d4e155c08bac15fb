// `keybroker env --format github|gitlab|shell`: sets ANTHROPIC_BASE_URL and the key for the rest
// of a CI job. The store is reached through the runner's own non-interactive identity (AWS web
// identity, Vault JWT/approle, GCP workload identity, Azure federated credential); nothing is cached.
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Command } from '../command.ts';
import { getKey } from '../../broker/broker.ts';
import { memoryRotationState } from '../../broker/rotation-state.ts';
import { noCache } from '../../cache/cache-store.ts';
import {
  ciAssignments,
  ciFormats,
  keyVariables,
  renderGithub,
  refuseGitlabTrace,
  renderGitlab,
  renderShell,
  type CiFormat,
  type KeyVariable,
} from '../../claude/ci-env.ts';
import { UsageError } from '../../kernel/errors.ts';
import { refuseEnforcedFlag } from '../../config/config.ts';
import { brokerDeps, configForMcp, loadConfigFor } from '../wiring.ts';

export const envCommand: Command = {
  name: 'env',
  summary: 'CI: set ANTHROPIC_BASE_URL and the key for the rest of a job (github, gitlab, shell)',
  help: `Usage: keybroker env --format github|gitlab|shell [--profile NAME] [--gateway URL] [--key-var NAME]

For CI runners: reads the key with the runner's own identity (no cache, no keychain, nothing
written but what the CI reads) and sets, for the rest of the job:
  ANTHROPIC_BASE_URL         --gateway, else the profile's "gateway", else ANTHROPIC_BASE_URL
  ANTHROPIC_API_KEY          the key (--key-var ANTHROPIC_AUTH_TOKEN sends it as a Bearer token)
  ANTHROPIC_CUSTOM_HEADERS   the profile's "gatewayHeaders", when it has any

  github  prints ::add-mask:: with the key first (GitHub then hides it in every log line) and
          appends the assignments to the file named by $GITHUB_ENV
  gitlab  prints shell exports to eval (GitLab cannot mask a value made at run time; refused
          while CI_DEBUG_TRACE or CI_DEBUG_SERVICES is
          true, 1 or t, as GitLab reads them)
  shell   prints shell exports to eval

Examples:
  keybroker env --format github                 # a GitHub Actions step: - run: keybroker env --format github
  keybroker env --format gitlab --key-var ANTHROPIC_AUTH_TOKEN
  eval "$(keybroker env --format shell)"        # any runner's script line`,
  options: { format: { type: 'string' }, gateway: { type: 'string' }, 'key-var': { type: 'string' } },
  async run(values, _positionals, context) {
    const format = values['format'];
    if (typeof format !== 'string' || !(ciFormats as readonly string[]).includes(format)) {
      throw new UsageError(
        `env: --format must be one of ${ciFormats.join(', ')}`,
        "run 'keybroker env --format github' (or gitlab, shell)",
      );
    }
    const keyVariable = (values['key-var'] ?? 'ANTHROPIC_API_KEY') as string;
    if (!(keyVariables as readonly string[]).includes(keyVariable))
      throw new UsageError(
        `env: --key-var must be one of ${keyVariables.join(', ')}`,
        'ANTHROPIC_API_KEY (x-api-key) or ANTHROPIC_AUTH_TOKEN (Bearer)',
      );
    const githubEnv = context.env['GITHUB_ENV'];
    if (format === 'github' && !githubEnv)
      throw new UsageError('env --format github: GITHUB_ENV is not set', 'run it as a step of a GitHub Actions job');
    // Before the store is read: a traced job gets no key at all.
    if (format === 'gitlab') refuseGitlabTrace(context.env);

    const { config } = configForMcp(loadConfigFor(values, context), values, context);
    refuseEnforcedFlag(config, 'gateway', '--gateway', typeof values['gateway'] === 'string' ? values['gateway'] : undefined);
    const deps = brokerDeps(config, context);
    Object.assign(deps, { caller: undefined, startBackgroundRefresh: undefined });
    // A runner keeps nothing: no cache, no lock or state files, no 401 memory. An SSO profile's
    // sign-in lives in its cache (the only place when the gateway issues no refresh token): kept.
    if (!config.profile.oidc)
      Object.assign(deps, { cache: noCache, state: memoryRotationState(), lock: { acquire: async () => async () => {} } });
    const served = await getKey(deps);
    const gateway =
      typeof values['gateway'] === 'string'
        ? values['gateway']
        : (config.profile.gateway ?? (context.env['ANTHROPIC_BASE_URL'] || undefined));
    if (!gateway)
      context.output.stderr(
        'keybroker: no gateway known (no --gateway, profile "gateway" or ANTHROPIC_BASE_URL): ANTHROPIC_BASE_URL is not set',
      );
    const assignments = ciAssignments({
      key: served.key,
      keyVariable: keyVariable as KeyVariable,
      gateway,
      gatewayHeaders: config.profile.gatewayHeaders,
    });
    switch (format as CiFormat) {
      case 'github': {
        const { log, envFile } = renderGithub(assignments, `keybroker_${randomUUID()}`);
        context.output.stdout(log);
        fs.appendFileSync(githubEnv!, envFile);
        context.output.stderr(`keybroker: set ${assignments.values.map(([name]) => name).join(', ')} for the rest of the job`);
        break;
      }
      case 'gitlab':
        context.output.stdout(renderGitlab(assignments, context.env));
        break;
      case 'shell':
        context.output.stdout(renderShell(assignments));
        break;
    }
    return 0;
  },
};
