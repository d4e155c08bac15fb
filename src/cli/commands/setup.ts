// `keybroker setup`: the Claude Code settings that make it call keybroker, printed or merged in.
import type { Command } from '../command.ts';
import { loadConfigFor } from '../wiring.ts';
import { callerTtlMs } from '../../claude/helper-ttl.ts';
import { managedSettingsPath, userSettingsPath } from '../../claude/settings.ts';
import { mergeIntoSettings, settingsSnippet, thisProgram } from '../../claude/setup.ts';
import { UsageError } from '../../kernel/errors.ts';

export const setupCommand: Command = {
  name: 'setup',
  summary: 'print (or --write) the Claude Code settings that make it use keybroker',
  help: `Usage: keybroker setup [--profile NAME] [--gateway URL] [--managed] [--write [--force]]

Prints the Claude Code settings JSON that makes Claude Code call keybroker:
  apiKeyHelper                        this binary's absolute path, quoted for the shell
  env.ANTHROPIC_BASE_URL              the gateway (--gateway, else the profile's "gateway",
                                      else ANTHROPIC_BASE_URL)
  env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS  half of keybroker's refresh interval, at most 5 minutes,
                                      so a rotated key reaches Claude Code within 1.5 intervals

Options:
  --write     merge it into ~/.claude/settings.json (CLAUDE_CONFIG_DIR is honoured): other keys
              are kept, a backup is written next to it first, and an apiKeyHelper that is not
              keybroker is left alone unless --force
  --force     with --write: replace an apiKeyHelper keybroker did not write
  --managed   target Claude Code's managed settings instead (admins; /etc/claude-code/
              managed-settings.json on Linux, /Library/Application Support/ClaudeCode/ on macOS,
              C:\\Program Files\\ClaudeCode\\ on Windows)
  --gateway URL  the gateway to put in env.ANTHROPIC_BASE_URL

Examples:
  keybroker setup                             # look first
  keybroker setup --write                     # then write it into your user settings
  keybroker setup --profile eu --gateway https://llm-eu.example.com --write
  sudo keybroker setup --managed --write      # for every user of this machine`,
  options: {
    write: { type: 'boolean' },
    force: { type: 'boolean' },
    managed: { type: 'boolean' },
    gateway: { type: 'string' },
  },
  async run(values, _positionals, context) {
    if (values['force'] && !values['write']) throw new UsageError('setup: --force only makes sense with --write', "run 'keybroker setup --write --force'");
    const config = loadConfigFor(values, context);
    const gateway = typeof values['gateway'] === 'string' ? values['gateway'] : config.profile.gateway ?? context.env['ANTHROPIC_BASE_URL'];
    const snippet = settingsSnippet({
      program: thisProgram(),
      ...(typeof values['profile'] === 'string' ? { profileFlag: values['profile'] } : {}),
      profile: config.profile,
      ...(gateway ? { gateway } : {}),
    });
    if (!gateway) context.output.stderr("keybroker: no gateway known (no --gateway, profile \"gateway\" or ANTHROPIC_BASE_URL): env.ANTHROPIC_BASE_URL left out; add it, or Claude Code talks to api.anthropic.com");
    const ttl = callerTtlMs(context.env);
    context.debug(`current CLAUDE_CODE_API_KEY_HELPER_TTL_MS in this shell: ${ttl}`);
    const target = values['managed'] ? managedSettingsPath(context.env) : userSettingsPath(context.env);
    if (!values['write']) {
      context.output.stdout(JSON.stringify(snippet, null, 2) + '\n');
      context.output.stderr(`keybroker: merge this into ${target}, or run 'keybroker setup${values['managed'] ? ' --managed' : ''} --write'`);
      return 0;
    }
    const outcome = mergeIntoSettings(target, snippet, { force: values['force'] === true, now: context.now() });
    context.output.stdout(JSON.stringify(snippet, null, 2) + '\n');
    const notes = [
      `wrote ${outcome.file}`,
      outcome.backup ? `backup at ${outcome.backup}` : undefined,
      outcome.replacedHelper ? `replaced apiKeyHelper ${JSON.stringify(outcome.replacedHelper)}` : undefined,
    ].filter(Boolean);
    context.output.stderr(`keybroker: ${notes.join('; ')}; check everything with 'keybroker doctor'`);
    return 0;
  },
};
