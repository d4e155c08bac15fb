// Wires the real world (config files, keychain, lock files, the store's SDK, the clock) into
// the broker core for one profile.
import { osLoginName } from '../kernel/login-name.ts';
import path from 'node:path';
import type { BrokerDeps } from '../broker/broker.ts';
import {
  loadConfig,
  mcpServers,
  resolveProfile,
  type LoadedConfig,
  type McpServerConfig,
  type OidcConfig,
  type Profile,
} from '../config/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import { chooseMcpServer, mcpRequestOf } from '../claude/surfaces.ts';
import type { RunContext, ParsedValues } from './command.ts';
import { openCache } from '../cache/select.ts';
import type { Lock } from '../broker/lock.ts';
import { isInsideFolder, projectFolder, userRuntimeDir } from '../kernel/paths.ts';
import { openProvider } from '../loader/open-store.ts';
import { identifyCaller } from '../broker/caller.ts';
import { fileRotationState } from '../broker/rotation-state.ts';
import { checkKeyWithGateway } from '../gateway/key-check.ts';
import { callerTtlMs } from '../claude/helper-ttl.ts';
import type { Provider } from '../../providers/provider.ts';
import type { SsoDeps } from '../sso/tokens.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import { maskSecrets } from '../kernel/output.ts';

export function loadConfigFor(values: ParsedValues, context: RunContext): LoadedConfig {
  const request: Parameters<typeof loadConfig>[0] = { env: context.env };
  if (typeof values['config'] === 'string') request.configFlag = configFlagPath(values['config'], context.env);
  if (typeof values['profile'] === 'string') request.profileFlag = values['profile'];
  return loadConfig(request);
}

/** --config as an absolute path; a relative one under an MCP headersHelper would be a file of the project Claude Code runs in. */
function configFlagPath(value: string, env: NodeJS.ProcessEnv): string {
  const mcp = env['CLAUDE_CODE_MCP_SERVER_URL'] !== undefined || env['CLAUDE_CODE_MCP_SERVER_NAME'] !== undefined;
  if (mcp && !path.isAbsolute(value)) {
    throw new ConfigError(
      `--config ${value} is a relative path, and keybroker runs as an MCP headersHelper: it would be read from the project Claude Code runs in`,
      'give --config an absolute path outside the project (or drop it: the user config file is the default)',
    );
  }
  return path.resolve(value);
}

/**
 * Under an MCP headersHelper (CLAUDE_CODE_MCP_SERVER_* present), whatever command prints the key:
 * the server must be listed in a trusted "mcpServers" (not one of a file in the project), and its
 * entry's profile serves it. Without those variables: the config as it is.
 */
export function configForMcp(
  config: LoadedConfig,
  values: ParsedValues,
  context: RunContext,
): { config: LoadedConfig; server?: McpServerConfig & { source: string } } {
  const request = mcpRequestOf(context.env);
  if (!request) return { config };
  const project = projectFolder(process.cwd());
  const { name, server } = chooseMcpServer(
    mcpServers(config.layers, project ? (file) => isInsideFolder(file, project) : undefined),
    request,
  );
  const requested = typeof values['profile'] === 'string' ? values['profile'] : (server.profile ?? context.env['KEYBROKER_PROFILE']);
  const served = resolveProfile(config.layers, requested);
  context.debug(`MCP server "${name}" (${server.url}, from ${server.source}) is served by profile "${served.profile.name}"`);
  return { config: served, server };
}

export interface BrokerOptions {
  /** Arguments that make a detached `keybroker get --refresh-ahead` read the same profile; absent: no refresh-ahead. */
  backgroundArgs?: string[];
}

export function brokerDeps(config: LoadedConfig, context: RunContext, options: BrokerOptions = {}): BrokerDeps {
  const { profile } = config;
  let provider: Promise<Provider> | undefined;
  const gateway = profile.gateway ?? (context.env['ANTHROPIC_BASE_URL'] || undefined);
  const cache = profileCache(profile, context);
  return {
    profile,
    cache,
    // An oidc profile's entries come from its token endpoint, refreshed with the stored refresh token
    // (src/sso/ is evaluated only then: a warm get, of either kind of profile, never runs it).
    fetchEntry: profile.oidc
      ? async () => (await import('../sso/tokens.ts')).tokenSource(await ssoDeps(config, context, cache))()
      : undefined,
    openProvider: () => (provider ??= openProvider(profile, { env: context.env, debug: context.debug })),
    lock: lazyFileLock(path.join(userRuntimeDir(context.env), 'locks'), warnLine(context)),
    now: context.now,
    // The time since the process was started. process.uptime(), not performance.now(): the
    // `performance` global loads perf_hooks (about 1 ms) on every warm get.
    startupMs: process.uptime() * 1000,
    osUser: () => osLoginName(context.env),
    callerTtlMs: callerTtlMs(context.env),
    caller: identifyCaller(context.env),
    state: fileRotationState(path.join(userRuntimeDir(context.env), 'state')),
    checkWithGateway: gateway ? (key) => checkKeyWithGateway(gateway, key) : undefined,
    gatewayName: gateway,
    startBackgroundRefresh: options.backgroundArgs ? () => startDetached(options.backgroundArgs!, context.env) : undefined,
    warn: warnLine(context),
    debug: context.debug,
  };
}

/** A warning on stderr, masked: a store-down warning quotes the store's error, which may quote the key. */
function warnLine(context: RunContext): (line: string) => void {
  return (line) => context.output.stderr(maskSecrets(line));
}

/** The profile's cache; `auto`'s fallback notice waits for the command's success. */
function profileCache(profile: Profile, context: RunContext): CacheStore {
  const hold = context.afterSuccess;
  return openCache({
    backend: profile.cache.backend,
    fallback: profile.cache.fallback,
    env: context.env,
    warn: warnLine(context),
    ...(hold ? { holdNotice: (say: () => void) => hold(say) } : {}),
  });
}

/** The lock module (and node:crypto with it) loads only when a store read takes the lock, never on a warm get. */
function lazyFileLock(dir: string, warn: (line: string) => void): Lock {
  let told = false;
  const noLock = (reason: string) => {
    if (told) return;
    told = true;
    warn(`keybroker: no refresh lock: ${reason}; reading the store without it`);
  };
  return {
    acquire: async (name, waitMs, giveUp) => (await import('../broker/lock.ts')).fileLock(dir, { noLock }).acquire(name, waitMs, giveUp),
    heldSince: async (name) => (await import('../broker/lock.ts')).fileLock(dir, { noLock }).heldSince(name),
  };
}

/**
 * Runs this executable again, detached in its own session with every stdio on /dev/null, so that
 * Claude Code (which waits for our stdout to close) never waits for it.
 */
function startDetached(args: string[], env: NodeJS.ProcessEnv): void {
  const self = process.getBuiltinModule('node:sea').isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
  // Loaded here, not at the top: node:child_process costs a warm `get` ~2 ms to load.
  const child = process
    .getBuiltinModule('node:child_process')
    .spawn(self[0]!, [...self.slice(1), ...args], { detached: true, stdio: 'ignore', env, windowsHide: true });
  child.on('error', () => {});
  child.unref();
}

/** What the SSO part needs for an `oidc` profile; `cache` is the broker's, so both tokens share one backend. */
export async function ssoDeps(config: LoadedConfig, context: RunContext, cache?: CacheStore): Promise<SsoDeps> {
  const { profile } = config;
  if (!profile.oidc) throw new Error('ssoDeps needs an oidc profile');
  const { loadSsoLibrary } = await import('../sso/library.ts');
  return {
    profile: profile as Profile & { oidc: OidcConfig },
    cache: cache ?? profileCache(profile, context),
    now: context.now,
    loadLibrary: () => loadSsoLibrary(context.debug),
    warn: warnLine(context),
    debug: context.debug,
  };
}
