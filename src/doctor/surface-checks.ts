// The other Claude surfaces, checked only where one is configured on this machine: the desktop
// app's third-party inference config, and HTTP MCP servers with a headersHelper.
import fs from 'node:fs';
import path from 'node:path';
import { formatDuration } from '../kernel/duration.ts';
import { mcpServers } from '../config/config.ts';
import { readClaudeSettings } from '../claude/settings.ts';
import { desktopConfigPath, runsKeybroker } from '../claude/surface-setup.ts';
import { recommendedTtlMs } from '../claude/setup.ts';
import { urlCovers } from '../claude/surfaces.ts';
import { fail, ok, skip, warn, type CheckSpec } from './check.ts';
import type { DoctorDeps, DoctorState } from './state.ts';

/** Desktop keeps a helper's credential this long unless inferenceCredentialHelperTtlSec says otherwise. */
const DESKTOP_DEFAULT_TTL_SEC = 3600;

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

interface McpEntry {
  name: string;
  where: string;
  url: string;
  headersHelper: string;
}

/** HTTP/SSE MCP servers with a headersHelper, from .mcp.json and the settings files. */
function mcpEntries(deps: DoctorDeps): McpEntry[] {
  const sources: { where: string; data: Record<string, unknown> | undefined }[] = [
    { where: path.join(deps.projectDir, '.mcp.json'), data: readJson(path.join(deps.projectDir, '.mcp.json')) },
    ...readClaudeSettings(deps.env, deps.projectDir, deps.platform).map((file) => ({ where: file.path, data: file.data })),
  ];
  return sources.flatMap(({ where, data }) => {
    const servers = data?.['mcpServers'];
    if (!servers || typeof servers !== 'object') return [];
    return Object.entries(servers as Record<string, Record<string, unknown>>)
      .filter(([, server]) => server && typeof server['headersHelper'] === 'string' && typeof server['url'] === 'string')
      .map(([name, server]) => ({ name, where, url: String(server['url']), headersHelper: String(server['headersHelper']) }));
  });
}

export function surfaceChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const checks: CheckSpec[] = [];
  const desktopFile = desktopConfigPath(deps.env, deps.platform);
  const desktop = readJson(desktopFile)?.['enterpriseConfig'] as Record<string, unknown> | undefined;
  if (desktop && typeof desktop === 'object' && desktop['inferenceCredentialHelper'] !== undefined) {
    checks.push({
      id: 'surfaces.desktop',
      layer: 'claude-code',
      title: 'Claude Desktop helper',
      timeoutMs: 1_000,
      async run() {
        const helper = String(desktop['inferenceCredentialHelper']);
        if (!runsKeybroker(helper))
          return warn(
            `${desktopFile} runs inferenceCredentialHelper ${JSON.stringify(helper)}, not keybroker`,
            "run 'keybroker setup --desktop --write --force' if keybroker should serve the desktop app",
          );
        const ttlSec = Number(desktop['inferenceCredentialHelperTtlSec'] ?? DESKTOP_DEFAULT_TTL_SEC);
        const refreshAfterMs = state.config?.profile.cache.refreshAfterMs;
        if (refreshAfterMs !== undefined && ttlSec * 1000 > refreshAfterMs) {
          return warn(
            `inferenceCredentialHelperTtlSec ${ttlSec} (${formatDuration(ttlSec * 1000)}) is longer than keybroker's refresh interval (${formatDuration(refreshAfterMs)}): after a rotation the app may send the old key for up to ${formatDuration(refreshAfterMs + ttlSec * 1000)}, longer than a grace period sized for Claude Code`,
            `set inferenceCredentialHelperTtlSec to ${Math.floor(recommendedTtlMs(refreshAfterMs) / 1000)} ('keybroker setup --desktop' prints it), or make the gateway's grace at least ${formatDuration(refreshAfterMs + ttlSec * 1000)}`,
            { ttlSec },
          );
        }
        return ok(`${desktopFile} runs keybroker with a ${formatDuration(ttlSec * 1000)} TTL`);
      },
    });
  }
  const entries = mcpEntries(deps);
  if (entries.length) {
    checks.push({
      id: 'surfaces.mcp',
      layer: 'claude-code',
      title: 'MCP headersHelpers',
      timeoutMs: 1_000,
      async run() {
        if (!state.config) return skip('the configuration did not load');
        const listed = Object.values(mcpServers(state.config.layers));
        const foreign = entries.filter((entry) => !runsKeybroker(entry.headersHelper));
        const unlisted = entries.filter(
          (entry) => runsKeybroker(entry.headersHelper) && !listed.some((server) => urlCovers(server.url, entry.url)),
        );
        const details = { servers: entries.map(({ name, where, url }) => ({ name, where, url })) };
        if (unlisted.length) {
          return fail(
            unlisted
              .map(
                (entry) =>
                  `MCP server "${entry.name}" (${entry.url}, in ${entry.where}) runs keybroker headers, but keybroker's "mcpServers" does not list its URL: it refuses`,
              )
              .join('; '),
            `add it with 'keybroker setup --mcp ${unlisted[0]!.url}' (the second block goes into the keybroker config)`,
            details,
          );
        }
        if (foreign.length) {
          return warn(
            foreign
              .map(
                (entry) =>
                  `MCP server "${entry.name}" (in ${entry.where}) runs headersHelper ${JSON.stringify(entry.headersHelper)}, not keybroker`,
              )
              .join('; '),
            "use 'keybroker setup --mcp URL' for servers that take the gateway key",
            details,
          );
        }
        return ok(
          `${entries.length} MCP server${entries.length === 1 ? '' : 's'} run keybroker headers, each listed in "mcpServers"`,
          details,
        );
      },
    });
  }
  return checks;
}
