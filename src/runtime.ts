// Wires the real world (config files, keychain, lock files, the store's SDK, the clock) into
// the broker core for one profile.
import os from 'node:os';
import path from 'node:path';
import type { BrokerDeps } from './broker.ts';
import { loadConfig, type LoadedConfig } from './config.ts';
import type { RunContext, ParsedValues } from './command.ts';
import { openCache } from './cache/select.ts';
import type { Lock } from './lock.ts';
import { userRuntimeDir } from './paths.ts';
import { openProvider } from './store.ts';
import { identifyCaller } from './caller.ts';
import { fileRotationState } from './rotation-state.ts';
import { checkKeyWithGateway } from './gateway-check.ts';
import type { Provider } from '../providers/provider.ts';

/** Claude Code keeps a helper's key this long per process (SPEC §1). */
export const DEFAULT_CALLER_TTL_MS = 300_000;

export function callerTtlMs(env: NodeJS.ProcessEnv): number {
  const value = Number(env['CLAUDE_CODE_API_KEY_HELPER_TTL_MS']);
  return Number.isFinite(value) && value > 0 ? value : DEFAULT_CALLER_TTL_MS;
}

export function loadConfigFor(values: ParsedValues, context: RunContext): LoadedConfig {
  const request: Parameters<typeof loadConfig>[0] = { env: context.env };
  if (typeof values['config'] === 'string') request.configFlag = path.resolve(values['config']);
  if (typeof values['profile'] === 'string') request.profileFlag = values['profile'];
  return loadConfig(request);
}

export interface BrokerOptions {
  /** Arguments that make a detached `keybroker get --refresh-ahead` read the same profile; absent: no refresh-ahead. */
  backgroundArgs?: string[];
}

export function brokerDeps(config: LoadedConfig, context: RunContext, options: BrokerOptions = {}): BrokerDeps {
  const { profile } = config;
  let provider: Promise<Provider> | undefined;
  const gateway = profile.gateway ?? (context.env['ANTHROPIC_BASE_URL'] || undefined);
  return {
    profile,
    cache: openCache({
      backend: profile.cache.backend,
      fallback: profile.cache.fallback,
      env: context.env,
      warn: (line) => context.output.stderr(line),
    }),
    openProvider: () => (provider ??= openProvider(profile, { env: context.env, debug: context.debug })),
    lock: lazyFileLock(path.join(userRuntimeDir(context.env), 'locks')),
    now: context.now,
    // In the single executable, the time since the process was started.
    startupMs: performance.now(),
    osUser: () => os.userInfo().username,
    callerTtlMs: callerTtlMs(context.env),
    caller: identifyCaller(context.env),
    state: fileRotationState(path.join(userRuntimeDir(context.env), 'state')),
    checkWithGateway: gateway ? (key) => checkKeyWithGateway(gateway, key) : undefined,
    gatewayName: gateway,
    startBackgroundRefresh: options.backgroundArgs ? () => startDetached(options.backgroundArgs!, context.env) : undefined,
    warn: (line) => context.output.stderr(line),
    debug: context.debug,
  };
}

/** The lock module (and node:crypto with it) loads only when a store read takes the lock, never on a warm get. */
function lazyFileLock(dir: string): Lock {
  return {
    acquire: async (name, waitMs) => (await import('./lock.ts')).fileLock(dir).acquire(name, waitMs),
    heldSince: async (name) => (await import('./lock.ts')).fileLock(dir).heldSince!(name),
  };
}

/**
 * Runs this executable again, detached in its own session with every stdio on /dev/null, so that
 * Claude Code (which waits for our stdout to close) never waits for it.
 */
function startDetached(args: string[], env: NodeJS.ProcessEnv): void {
  const self = process.getBuiltinModule('node:sea').isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
  // Loaded here, not at the top: node:child_process costs a warm `get` ~2 ms to load.
  const child = process.getBuiltinModule('node:child_process').spawn(self[0]!, [...self.slice(1), ...args], { detached: true, stdio: 'ignore', env, windowsHide: true });
  child.on('error', () => {});
  child.unref();
}
