// The other places a Claude product runs a command for a credential, as pure rendering: MCP
// `headersHelper` and `otelHeadersHelper` (a JSON object of headers), Desktop/Cowork's
// `inferenceCredentialHelper` (a bare token, or {token, headers}), and the gateway's extra
// headers (ANTHROPIC_CUSTOM_HEADERS). No I/O here: the commands fetch the key and print.
import type { McpServerConfig, Profile } from '../config/config.ts';
import { ConfigError } from '../kernel/errors.ts';

/** `keybroker headers`' object: the profile's templates with {key} filled in, else a Bearer header. */
export function renderHeaders(profile: Pick<Profile, 'headers'>, key: string): Record<string, string> {
  if (!profile.headers) return { Authorization: `Bearer ${key}` };
  return Object.fromEntries(Object.entries(profile.headers).map(([name, template]) => [name, template.replaceAll('{key}', key)]));
}

/** The values Desktop/Cowork set in CLAUDE_HELPER_CONTEXT (docs, late 2026). */
const helperContexts = ['interactive', 'mid-session-refresh', 'scheduled-task', 'setup-test', 'background'] as const;
export type HelperContext = (typeof helperContexts)[number];

export function helperContext(env: NodeJS.ProcessEnv): HelperContext | 'unknown' | undefined {
  const value = env['CLAUDE_HELPER_CONTEXT'];
  if (value === undefined || value === '') return undefined;
  return (helperContexts as readonly string[]).includes(value) ? (value as HelperContext) : 'unknown';
}

/**
 * Desktop's inferenceCredentialHelper keeps what it is given for inferenceCredentialHelperTtlSec,
 * 3600 s unless the admin distributes less: the freshness margin before a key's expires_at must
 * cover that (src/broker/broker.ts: 2 × TTL + 60 s).
 */
export const DESKTOP_DEFAULT_TTL_MS = 3_600_000;

/** What Desktop's helper prints: the bare key, or {token, headers} when the gateway needs more headers. */
export function desktopCredential(profile: Pick<Profile, 'gatewayHeaders'>, key: string): string {
  if (!profile.gatewayHeaders) return key;
  return JSON.stringify({ token: key, headers: profile.gatewayHeaders });
}

/** ANTHROPIC_CUSTOM_HEADERS: one `Name: Value` per line, as Claude Code reads it. */
export function customHeadersValue(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join('\n');
}

/**
 * True when `url` is the configured server's URL or below it: same scheme, host and port, and a
 * path under the configured one at a `/` boundary (https://mcp.example/api does not cover /apix).
 */
export function urlCovers(configured: string, url: string): boolean {
  let base: URL;
  let target: URL;
  try {
    base = new URL(configured);
    target = new URL(url);
  } catch {
    return false;
  }
  if (base.protocol !== target.protocol || base.host !== target.host) return false;
  if (target.username || target.password) return false;
  const prefix = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  return target.pathname === base.pathname || target.pathname.startsWith(prefix);
}

/**
 * What Claude Code says an MCP headersHelper is serving, or undefined when neither variable is
 * present. Either one present makes this an MCP call: an emptied URL (`CLAUDE_CODE_MCP_SERVER_URL=`
 * written into the helper's own command) is refused, not read as "no server".
 */
export function mcpRequestOf(env: NodeJS.ProcessEnv): { url: string; name: string | undefined } | undefined {
  const url = env['CLAUDE_CODE_MCP_SERVER_URL'];
  const name = env['CLAUDE_CODE_MCP_SERVER_NAME'];
  if (url === undefined && name === undefined) return undefined;
  if (!url) {
    throw new ConfigError(
      `keybroker runs as an MCP headersHelper${name ? ` for "${name}"` : ''} but CLAUDE_CODE_MCP_SERVER_URL is ${url === undefined ? 'not set' : 'empty'}, so the server that would receive the key is unknown; keybroker sends a key only to a server its "mcpServers" lists`,
      'remove any CLAUDE_CODE_MCP_SERVER_URL=… from the headersHelper command in .mcp.json (Claude Code sets it)',
    );
  }
  return { url, name: name || undefined };
}

/**
 * The MCP server entry for what Claude Code says it is calling (CLAUDE_CODE_MCP_SERVER_URL, _NAME).
 * The URL decides: a server name is chosen by whoever wrote the .mcp.json (a cloned repo may),
 * so a name alone never sends a key anywhere. Among entries covering the URL, the one named as
 * Claude Code names the server wins, else the longest URL.
 */
export function chooseMcpServer(
  servers: Record<string, McpServerConfig & { source: string }>,
  request: { url: string; name?: string | undefined },
): { name: string; server: McpServerConfig & { source: string } } {
  const covering = Object.entries(servers).filter(([, server]) => urlCovers(server.url, request.url));
  const named = covering.find(([name]) => name === request.name);
  const chosen = named ?? covering.sort(([, a], [, b]) => b.url.length - a.url.length)[0];
  if (!chosen) {
    const listed = Object.entries(servers).map(([name, server]) => `${name} (${server.url})`);
    throw new ConfigError(
      `MCP server ${request.name ? `"${request.name}" ` : ''}at ${request.url} is not listed in keybroker's "mcpServers"${listed.length ? ` (listed: ${listed.join(', ')})` : ''}; keybroker sends a key only to the servers its config lists`,
      `add "mcpServers": {"${request.name ?? 'NAME'}": {"url": "${originOf(request.url)}"}} to the keybroker config (keybroker setup --mcp URL prints it)`,
    );
  }
  return { name: chosen[0], server: chosen[1] };
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}
