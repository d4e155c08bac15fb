// `keybroker setup`: the Claude Code settings that make it call keybroker, printed or merged in.
import type { Command, ParsedValues, RunContext } from '../command.ts';
import { loadConfigFor } from '../wiring.ts';
import { callerTtlMs } from '../../claude/helper-ttl.ts';
import { managedSettingsPath, shellQuote, userSettingsPath } from '../../claude/settings.ts';
import { checkedBinary, isSystemLocation } from '../../claude/helper-binary.ts';
import { helperTarget, mergeAppsGatewaySettings, mergeIntoSettings, settingsSnippet, thisProgram } from '../../claude/setup.ts';
import { UsageError } from '../../kernel/errors.ts';
import type { Profile } from '../../config/config.ts';
import { customHeadersValue } from '../../claude/surfaces.ts';
import {
  appsGatewayManagedSettings,
  desktopConfigPath,
  desktopKeys,
  helperCommand,
  mcpServerName,
  mcpSnippets,
  mergeDesktopConfig,
  otelSnippet,
  thisProgramArgv,
} from '../../claude/surface-setup.ts';

/** The program the settings run, shell-quoted: --binary's path or this binary; a managed file outside the system folders is warned about. */
function helperProgram(values: ParsedValues, context: RunContext): string {
  const binary = typeof values['binary'] === 'string' ? checkedBinary(values['binary']) : undefined;
  const file = binary ?? (process.getBuiltinModule('node:sea').isSea() ? process.execPath : undefined);
  if (values['managed'] && file && !isSystemLocation(file)) {
    context.output.stderr(
      `keybroker: warning: every developer's Claude Code will run ${file}, which is not in a system folder (a download or build folder moves, and its owner can change it): install keybroker under /usr/local/bin or /opt/… and pass --binary with that path`,
    );
  }
  return binary ? shellQuote(binary) : thisProgram();
}

export const setupCommand: Command = {
  name: 'setup',
  summary: 'print (or --write) the Claude Code settings that make it use keybroker',
  help: `Usage: keybroker setup [--config FILE] [--profile NAME] [--gateway URL] [--managed] [--write [--force]]
       keybroker setup --desktop [--write [--force]] | --mcp SERVER_URL [--mcp-name NAME] | --otel
       keybroker setup --managed --apps-gateway URL [--write [--force]]

Prints the Claude Code settings JSON that makes Claude Code call keybroker:
  apiKeyHelper                        this binary's absolute path, quoted for the shell; with
                                      get --config FILE --profile NAME when setup was given them
                                      (flags, KEYBROKER_CONFIG, KEYBROKER_PROFILE), FILE absolute
  env.ANTHROPIC_BASE_URL              the gateway (--gateway, else the profile's "gateway",
                                      else ANTHROPIC_BASE_URL)
  env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS  half of keybroker's refresh interval, at most 5 minutes,
                                      so a rotated key reaches Claude Code within 1.5 intervals
  env.ANTHROPIC_CUSTOM_HEADERS        the profile's "gatewayHeaders", when it has any

The other surfaces (printed; --desktop also writes):
  --desktop       Claude Desktop / Cowork third-party inference: inferenceCredentialHelper = this
                  binary, inferenceCredentialHelperTtlSec as above; --write merges it into the
                  app's claude_desktop_config.json ("enterpriseConfig"); --managed prints the keys
                  for your MDM profile (com.anthropic.claudefordesktop) or registry policy
  --mcp URL       the .mcp.json entry whose headersHelper is 'keybroker headers', and the
                  keybroker "mcpServers" entry that lets a key go to that URL (--mcp-name NAME)
  --otel          the settings lines for otelHeadersHelper (OTLP over HTTP)
  --managed --apps-gateway URL  the managed settings that point Claude Code (and the Desktop
                  app's Code tab) at a Claude apps gateway for its native sign-in: forceLoginMethod
                  "gateway", forceLoginGatewayUrl, parentSettingsBehavior "merge"; no apiKeyHelper
                  (--write merges them into the managed file and refuses one that has an
                  apiKeyHelper, which --force removes: Claude Code will not start with both)

Options:
  --write     merge it into ~/.claude/settings.json (CLAUDE_CONFIG_DIR is honoured): other keys
              are kept, a backup is written next to it first, and an apiKeyHelper that is not
              keybroker is left alone unless --force; the write is atomic, and a symlinked
              settings.json (dotfiles) is written through to its target, the link kept
  --force     with --write: replace an apiKeyHelper keybroker did not write
  --managed   target Claude Code's managed settings instead, written 0644 so every user's
              Claude Code can read it (admins; /etc/claude-code/
              managed-settings.json on Linux, /Library/Application Support/ClaudeCode/ on macOS,
              C:\\Program Files\\ClaudeCode\\ on Windows)
  --gateway URL  the gateway to put in env.ANTHROPIC_BASE_URL
  --binary PATH  the installed keybroker the settings run (default: this binary); with
              --managed a path outside the system folders (/usr/bin, /usr/local/bin, /opt/…,
              /Applications/…, Program Files) is warned about

Examples:
  keybroker setup                             # look first
  keybroker setup --write                     # then write it into your user settings
  keybroker setup --profile eu --gateway https://llm-eu.example.com --write
  sudo keybroker setup --managed --write      # for every user of this machine
  sudo ./keybroker setup --managed --binary /usr/local/bin/keybroker --write`,
  options: {
    write: { type: 'boolean' },
    force: { type: 'boolean' },
    managed: { type: 'boolean' },
    gateway: { type: 'string' },
    binary: { type: 'string' },
    desktop: { type: 'boolean' },
    mcp: { type: 'string' },
    'mcp-name': { type: 'string' },
    'apps-gateway': { type: 'string' },
    otel: { type: 'boolean' },
  },
  async run(values, _positionals, context) {
    if (values['force'] && !values['write'])
      throw new UsageError('setup: --force only makes sense with --write', "run 'keybroker setup --write --force'");
    if (values['apps-gateway'] !== undefined) return setupAppsGateway(values, context);
    const config = loadConfigFor(values, context);
    const gateway =
      typeof values['gateway'] === 'string' ? values['gateway'] : (config.profile.gateway ?? context.env['ANTHROPIC_BASE_URL']);
    const helper = helperTarget(
      {
        ...(typeof values['config'] === 'string' ? { config: values['config'] } : {}),
        ...(typeof values['profile'] === 'string' ? { profile: values['profile'] } : {}),
      },
      context.env,
      process.cwd(),
    );
    if (helper.notCarried.length) {
      context.output.stderr(
        `keybroker: ${helper.notCarried.join(', ')} ${helper.notCarried.length === 1 ? 'is' : 'are'} set in this shell but not written: Claude Code's helper sees ${helper.notCarried.length === 1 ? 'it' : 'them'} only from Claude Code's own environment (or put the value in the config file)`,
      );
    }
    const program = helperProgram(values, context);
    const snippet = settingsSnippet({
      program,
      // The helper reads what setup read: the same config file (absolute) and profile.
      target: helper,
      profile: config.profile,
      ...(gateway ? { gateway } : {}),
    });
    const profileFlag = typeof values['profile'] === 'string' ? values['profile'] : undefined;
    const surfaces = [values['desktop'], values['mcp'], values['otel']].filter((value) => value !== undefined && value !== false).length;
    if (surfaces > 1) throw new UsageError('setup: one of --desktop, --mcp, --otel at a time', "run 'keybroker setup --help'");
    if (typeof values['mcp'] === 'string') return setupMcp(values['mcp'], values, context, config.profile.name, profileFlag);
    if (values['otel']) return setupOtel(values, context, profileFlag);
    if (values['desktop']) return setupDesktop(values, context, config.profile, gateway, profileFlag);
    return setupClaudeCode(values, context, config.profile, snippet, gateway);
  },
};

/** `setup --mcp URL`: the .mcp.json entry and the keybroker config's MCP allow-list entry, printed only. */
function setupMcp(url: string, values: ParsedValues, context: RunContext, profileName: string, profileFlag: string | undefined): number {
  if (values['write'])
    throw new UsageError(
      'setup --mcp prints only',
      'paste the first block into .mcp.json (or settings "mcpServers"), the second into the keybroker config',
    );
  const name = typeof values['mcp-name'] === 'string' ? values['mcp-name'] : mcpServerName(url);
  const snippets = mcpSnippets({
    url: url,
    name,
    command: helperCommand(thisProgram(), 'headers', profileFlag),
    profileName: profileName,
  });
  context.output.stdout(`${JSON.stringify(snippets.mcpJson, null, 2)}\n${JSON.stringify(snippets.keybrokerConfig, null, 2)}\n`);
  context.output.stderr(
    'keybroker: the first block goes into .mcp.json (or "mcpServers" in Claude Code settings); the second into the keybroker config (keybroker sends a key only to the MCP servers it lists)',
  );
  return 0;
}

/** `setup --otel`: the telemetry settings whose headers helper is keybroker, printed only. */
function setupOtel(values: ParsedValues, context: RunContext, profileFlag: string | undefined): number {
  if (values['write']) throw new UsageError('setup --otel prints only', 'merge it into your Claude Code settings');
  context.output.stdout(`${JSON.stringify(otelSnippet(helperCommand(thisProgram(), 'headers', profileFlag)), null, 2)}\n`);
  context.output.stderr(
    'keybroker: merge this into your Claude Code settings and set env.OTEL_EXPORTER_OTLP_ENDPOINT to your collector (otelHeadersHelper serves HTTP exporters only)',
  );
  return 0;
}

/** `setup --desktop [--managed] [--write]`: Claude Desktop's enterprise keys, printed, merged into its config, or for the MDM. */
function setupDesktop(
  values: ParsedValues,
  context: RunContext,
  profile: Profile,
  gateway: string | undefined,
  profileFlag: string | undefined,
): number {
  if (!gateway)
    context.output.stderr(
      'keybroker: no gateway known (no --gateway, profile "gateway" or ANTHROPIC_BASE_URL): inferenceGatewayBaseUrl left out; the app requires it',
    );
  const keys = desktopKeys({ argv: thisProgramArgv(), profileFlag, profile: profile, gateway });
  if (values['managed']) {
    if (values['write'])
      throw new UsageError(
        'setup --desktop --managed prints the keys; your MDM delivers them',
        'put them into the com.anthropic.claudefordesktop profile (macOS) or HKLM\\SOFTWARE\\Policies\\Claude (Windows), each value a string',
      );
    context.output.stdout(`${JSON.stringify(keys, null, 2)}\n`);
    context.output.stderr(
      'keybroker: put these keys into your MDM profile (com.anthropic.claudefordesktop) or registry policy (HKLM\\SOFTWARE\\Policies\\Claude), each value a string',
    );
    return 0;
  }
  const file = desktopConfigPath(context.env);
  if (!values['write']) {
    context.output.stdout(`${JSON.stringify({ enterpriseConfig: keys }, null, 2)}\n`);
    context.output.stderr(`keybroker: merge this into ${file}, or run 'keybroker setup --desktop --write'; quit and reopen the app after`);
    return 0;
  }
  const outcome = mergeDesktopConfig(file, keys, { force: values['force'] === true, now: context.now() });
  context.output.stdout(`${JSON.stringify({ enterpriseConfig: keys }, null, 2)}\n`);
  context.output.stderr(`keybroker: wrote ${file}${outcome.backup ? `; backup at ${outcome.backup}` : ''}; quit and reopen the app`);
  return 0;
}

/** `setup [--managed] [--write]`: Claude Code's settings (apiKeyHelper, env), printed or merged into the settings file. */
function setupClaudeCode(
  values: ParsedValues,
  context: RunContext,
  profile: Profile,
  snippet: ReturnType<typeof settingsSnippet>,
  gateway: string | undefined,
): number {
  if (profile.gatewayHeaders) snippet.env['ANTHROPIC_CUSTOM_HEADERS'] = customHeadersValue(profile.gatewayHeaders);
  if (!gateway)
    context.output.stderr(
      'keybroker: no gateway known (no --gateway, profile "gateway" or ANTHROPIC_BASE_URL): env.ANTHROPIC_BASE_URL left out; add it, or Claude Code talks to api.anthropic.com',
    );
  const ttl = callerTtlMs(context.env);
  context.debug(`current CLAUDE_CODE_API_KEY_HELPER_TTL_MS in this shell: ${ttl}`);
  const target = values['managed'] ? managedSettingsPath(context.env) : userSettingsPath(context.env);
  if (!values['write']) {
    context.output.stdout(`${JSON.stringify(snippet, null, 2)}\n`);
    context.output.stderr(`keybroker: merge this into ${target}, or run 'keybroker setup${values['managed'] ? ' --managed' : ''} --write'`);
    return 0;
  }
  const outcome = mergeIntoSettings(target, snippet, {
    force: values['force'] === true,
    now: context.now(),
    managed: values['managed'] === true,
  });
  context.output.stdout(`${JSON.stringify(snippet, null, 2)}\n`);
  const notes = [
    outcome.unchanged
      ? `${outcome.file} already has these settings; not written, no backup`
      : `wrote ${outcome.file}${outcome.through ? ` (through the link, to ${outcome.through})` : ''}`,
    outcome.backup ? `backup at ${outcome.backup}` : undefined,
    outcome.replacedHelper ? `replaced apiKeyHelper ${JSON.stringify(outcome.replacedHelper)}` : undefined,
  ].filter(Boolean);
  context.output.stderr(`keybroker: ${notes.join('; ')}; check everything with 'keybroker doctor'`);
  return 0;
}

/** `setup --managed --apps-gateway URL [--write [--force]]`: Claude Code signs in to the Claude apps gateway itself. */
function setupAppsGateway(values: ParsedValues, context: RunContext): number {
  if (!values['managed'])
    throw new UsageError(
      'setup --apps-gateway is for the managed settings',
      "run 'keybroker setup --managed --apps-gateway https://…' (add --write, as admin, to merge it into the managed settings file)",
    );
  const settings = appsGatewayManagedSettings(String(values['apps-gateway']));
  context.output.stdout(`${JSON.stringify(settings, null, 2)}\n`);
  if (!values['write']) {
    context.output.stderr(
      `keybroker: merge this into ${managedSettingsPath(context.env)} (or your MDM's managed settings) and leave apiKeyHelper and ANTHROPIC_API_KEY out of them: Claude Code refuses to start when a pinned gateway sign-in meets an API key`,
    );
    return 0;
  }
  const outcome = mergeAppsGatewaySettings(managedSettingsPath(context.env), settings, {
    force: values['force'] === true,
    now: context.now(),
  });
  const notes = [
    outcome.unchanged ? `${outcome.file} already has these settings; not written, no backup` : `wrote ${outcome.file}`,
    outcome.backup ? `backup at ${outcome.backup}` : undefined,
    outcome.replacedHelper
      ? `removed apiKeyHelper ${JSON.stringify(outcome.replacedHelper)} (Claude Code signs in to the gateway itself)`
      : undefined,
  ].filter(Boolean);
  context.output.stderr(`keybroker: ${notes.join('; ')}`);
  return 0;
}
