// `keybroker headers`: one JSON object of HTTP headers, for Claude Code's MCP `headersHelper`
// and `otelHeadersHelper`. Same broker as `get` (cache, single flight, 401 rule, exit codes).
import type { Command } from '../command.ts';
import { getKey } from '../../broker/broker.ts';
import { renderHeaders } from '../../claude/surfaces.ts';
import { brokerDeps, configForMcp, loadConfigFor } from '../wiring.ts';

/**
 * Claude Code runs an MCP server's headersHelper when it connects and again at once after a
 * 401/403; a second call from the same process for the same server within this long is that re-run.
 */
export const MCP_REFUSAL_WINDOW_MS = 60_000;
/** Claude Code runs otelHeadersHelper at start and then every 29 minutes (docs). */
const OTEL_DEBOUNCE_DEFAULT_MS = 29 * 60_000;

export const headersCommand: Command = {
  name: 'headers',
  summary: 'print HTTP headers as JSON (MCP headersHelper, otelHeadersHelper)',
  help: `Usage: keybroker headers [--profile NAME] [--recheck]

Prints one JSON object of HTTP headers on stdout, for Claude Code's MCP "headersHelper" and
"otelHeadersHelper". Default: {"Authorization": "Bearer <key>"}; a profile's "headers" map shapes
it ({"x-api-key": "{key}", "x-tenant": "acme"}). Same cache, exit codes and stderr as get.

As an MCP headersHelper (Claude Code sets CLAUDE_CODE_MCP_SERVER_URL and _NAME), keybroker
sends a key only to a server listed in the config's "mcpServers" ({"NAME": {"url": "https://…",
"profile": "…"}}), chosen by URL; the entry's profile serves it. Either variable present (even
emptied) requires a listed URL; entries of a file inside the project are not used. When Claude Code runs it again
for the same server right after connecting (its re-run after a 401/403), the store is re-read.

Options:
  --recheck   ignore a fresh cached key and ask the store

Examples:
  keybroker headers                                   # {"Authorization":"Bearer …"}
  keybroker setup --mcp https://mcp.example.com/mcp   # the .mcp.json entry that runs this
  keybroker setup --otel                              # the otelHeadersHelper settings`,
  options: { recheck: { type: 'boolean' } },
  async run(values, _positionals, context) {
    const { config, server } = configForMcp(loadConfigFor(values, context), values, context);
    let surface = 'headers';
    let windowMs = Number(context.env['CLAUDE_CODE_OTEL_HEADERS_HELPER_DEBOUNCE_MS']) || OTEL_DEBOUNCE_DEFAULT_MS;
    if (server) {
      surface = `mcp:${server.url}`;
      windowMs = MCP_REFUSAL_WINDOW_MS;
    }
    const backgroundArgs = ['get', '--refresh-ahead', '--profile', config.profile.name];
    if (typeof values['config'] === 'string') backgroundArgs.splice(2, 0, '--config', values['config']);
    const deps = brokerDeps(config, context, { backgroundArgs });
    // Each surface of one Claude Code process is its own caller: its apiKeyHelper run must not
    // read as this helper's 401 re-run, nor one MCP server's as another's.
    if (deps.caller) deps.caller = { ...deps.caller, id: `${deps.caller.id}|${surface}` };
    deps.callerTtlMs = windowMs;
    const served = await getKey(deps, { recheck: values['recheck'] === true });
    context.debug(`served version ${served.version} of "${served.secret}" from ${served.from}`);
    context.output.stdout(JSON.stringify(renderHeaders(config.profile, served.key)));
    return 0;
  },
};
