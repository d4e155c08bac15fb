// What `keybroker setup --desktop | --mcp URL | --otel` prints: the other surfaces' settings with
// keybroker as their helper. Pure, except the Desktop file's location and its careful merge.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Profile } from '../config/config.ts';
import { ConfigError, UsageError } from '../kernel/errors.ts';
import { recommendedTtlMs } from './setup.ts';
import { helperProgram, isKeybrokerProgram, shellQuote } from './settings.ts';
import { writeFileAtomic } from '../kernel/temp-files.ts';

/** This program as an argv: the SEA's own path, or node plus the script when run from source. */
export function thisProgramArgv(): string[] {
  if (process.getBuiltinModule('node:sea').isSea()) return [process.execPath];
  return [process.execPath, path.resolve(process.argv[1] ?? '')];
}

/**
 * Desktop / Cowork third-party inference keys (docs: cowork/3p/configuration; every value a
 * string). The helper is an absolute path run without a shell; arguments go one per entry in
 * inferenceCredentialHelperArgs, which may hold no `"`, `%` or control character (cmd.exe).
 * The TTL is the one `setup` gives Claude Code: a rotation then reaches the app within
 * refreshAfter + TTL, which the gateway's grace period must cover (docs/surfaces.md).
 */
export function desktopKeys(options: {
  argv: string[];
  profileFlag?: string | undefined;
  profile: Profile;
  gateway?: string | undefined;
}): Record<string, string> {
  const [program, ...rest] = options.argv;
  const args = [...rest, ...(options.profileFlag ? ['get', '--profile', options.profileFlag] : [])];
  // biome-ignore lint/suspicious/noControlCharactersInRegex: Desktop refuses a control character in an argument
  if (args.some((arg) => /["%\x00-\x1f]/.test(arg)))
    throw new UsageError('a helper argument holds ", % or a control character, which Desktop refuses', 'use a profile name without them');
  const keys: Record<string, string> = { inferenceProvider: 'gateway' };
  if (options.gateway) keys['inferenceGatewayBaseUrl'] = options.gateway;
  keys['inferenceGatewayAuthScheme'] = 'bearer';
  keys['inferenceCredentialHelper'] = program!;
  if (args.length) keys['inferenceCredentialHelperArgs'] = JSON.stringify(args);
  keys['inferenceCredentialHelperTtlSec'] = String(desktopTtlSec(options.profile.cache.refreshAfterMs));
  return keys;
}

/** The desktop app's TTL that setup distributes: Claude Code's rule, in whole seconds. */
export function desktopTtlSec(refreshAfterMs: number): number {
  return Math.floor(recommendedTtlMs(refreshAfterMs) / 1000);
}

/** The desktop app keeps a key its TTL and then asks again: the old key may be sent until refreshAfter + TTL. */
export function desktopGraceMs(refreshAfterMs: number, ttlSec: number): number {
  return refreshAfterMs + ttlSec * 1000;
}

/** The app's local (non-MDM) configuration file; KEYBROKER_DESKTOP_CONFIG moves it. */
export function desktopConfigPath(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_DESKTOP_CONFIG']) return env['KEYBROKER_DESKTOP_CONFIG'];
  const home = env['HOME'] || env['USERPROFILE'] || os.homedir();
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'Claude-3p', 'claude_desktop_config.json');
  if (platform === 'win32')
    return path.win32.join(env['APPDATA'] || path.win32.join(home, 'AppData', 'Roaming'), 'Claude-3p', 'claude_desktop_config.json');
  // No desktop app ships for Linux: the same layout under XDG_CONFIG_HOME, for files prepared here.
  return path.join(env['XDG_CONFIG_HOME'] || path.join(home, '.config'), 'Claude-3p', 'claude_desktop_config.json');
}

/** Merges the keys into the file's `enterpriseConfig`, other keys kept, a backup first; a foreign helper only with force. */
export function mergeDesktopConfig(
  file: string,
  keys: Record<string, string>,
  options: { force: boolean; now: number },
): { backup?: string } {
  let text: string | undefined;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new ConfigError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code})`, 'check its permissions');
  }
  let existing: Record<string, unknown> = {};
  if (text !== undefined && text.trim() !== '') {
    try {
      existing = JSON.parse(text) as Record<string, unknown>;
    } catch (error) {
      throw new ConfigError(
        `${file} is not valid JSON (${(error as Error).message}); not touching it`,
        'fix it by hand, then run setup --desktop --write again',
      );
    }
    if (!existing || typeof existing !== 'object' || Array.isArray(existing))
      throw new ConfigError(`${file} is not a JSON object; not touching it`, 'fix it by hand');
  }
  const enterprise = (
    existing['enterpriseConfig'] && typeof existing['enterpriseConfig'] === 'object' ? existing['enterpriseConfig'] : {}
  ) as Record<string, unknown>;
  const current = enterprise['inferenceCredentialHelper'];
  if (typeof current === 'string' && current !== keys['inferenceCredentialHelper'] && !isKeybrokerProgram(current) && !options.force) {
    throw new UsageError(
      `${file} already names another inferenceCredentialHelper (${JSON.stringify(current)}); left unchanged`,
      'run with --force to replace it (a backup is kept)',
    );
  }
  const merged = { ...existing, enterpriseConfig: { ...enterprise, ...keys } };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const outcome: { backup?: string } = {};
  if (text !== undefined) {
    outcome.backup = `${file}.keybroker-backup-${new Date(options.now).toISOString().replace(/[:.]/g, '-')}`;
    fs.copyFileSync(file, outcome.backup);
  }
  writeFileAtomic(file, `${JSON.stringify(merged, null, 2)}\n`, 0o600);
  return outcome;
}

/** A name for an MCP server from its URL's host (`mcp.corp.example` → `mcp-corp-example`). */
export function mcpServerName(url: string): string {
  try {
    return new URL(url).hostname.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'server';
  } catch {
    throw new UsageError(`--mcp ${JSON.stringify(url)} is not a URL`, "give the MCP server's URL, e.g. https://mcp.example.com/mcp");
  }
}

/** The helper command Claude Code runs through its shell, with a profile flag when one was named. */
export function helperCommand(
  program: string,
  subcommand: string,
  profileFlag: string | undefined,
  platform: NodeJS.Platform = process.platform,
): string {
  return `${program} ${subcommand}${profileFlag ? ` --profile ${shellQuote(profileFlag, platform)}` : ''}`;
}

/** `.mcp.json` (or settings `mcpServers`) entry and the keybroker config lines that allow it. */
export function mcpSnippets(options: { url: string; name: string; command: string; profileName: string }) {
  return {
    mcpJson: { mcpServers: { [options.name]: { type: 'http', url: options.url, headersHelper: options.command } } },
    keybrokerConfig: { mcpServers: { [options.name]: { url: options.url, profile: options.profileName } } },
  };
}

/** Settings lines for telemetry: otelHeadersHelper (HTTP exporters only). */
export function otelSnippet(command: string): Record<string, unknown> {
  return {
    otelHeadersHelper: command,
    env: {
      CLAUDE_CODE_ENABLE_TELEMETRY: '1',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    },
  };
}

/** True when a helper command runs keybroker (for doctor). */
export function runsKeybroker(command: unknown): boolean {
  return typeof command === 'string' && isKeybrokerProgram(helperProgram(command));
}

/**
 * Claude Code's managed settings for a Claude apps gateway's native sign-in (the keys the gateway
 * itself names at boot): Claude Code's /login signs in there, with no apiKeyHelper.
 */
export function appsGatewayManagedSettings(address: string): Record<string, string> {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new UsageError(`--apps-gateway "${address}" is not a URL`, "give the gateway's https:// address (its listen.public_url)");
  }
  if (url.protocol !== 'https:')
    throw new UsageError(
      `--apps-gateway ${url.href} is not HTTPS`,
      "Claude Code's /login reaches a gateway only over HTTPS on a private network: give its https:// address",
    );
  return { forceLoginMethod: 'gateway', forceLoginGatewayUrl: url.origin, parentSettingsBehavior: 'merge' };
}
