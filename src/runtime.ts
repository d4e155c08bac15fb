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

export function brokerDeps(config: LoadedConfig, context: RunContext): BrokerDeps {
  const { profile } = config;
  let provider: Promise<Provider> | undefined;
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
    osUser: () => os.userInfo().username,
    callerTtlMs: callerTtlMs(context.env),
    warn: (line) => context.output.stderr(line),
    debug: context.debug,
  };
}

/** proper-lockfile (with graceful-fs and signal-exit) costs ~7 ms to load; only a store read takes the lock. */
function lazyFileLock(dir: string): Lock {
  return {
    acquire: async (name, waitMs) => (await import('./lock.ts')).fileLock(dir).acquire(name, waitMs),
  };
}
