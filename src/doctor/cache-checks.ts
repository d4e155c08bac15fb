// Layer 3: the cache. Which backend is used and why, a round trip under a throwaway account,
// and the profile's cached entry (age and fingerprint, never the key).
import { CacheUnavailable } from '../kernel/errors.ts';
import { noCache } from '../cache/cache-store.ts';
import { fileCache } from '../cache/file.ts';
import { plainKeychainReason } from '../cache/select.ts';
import { parseEntry } from '../cache/entry.ts';
import { keyFilesDir } from '../kernel/paths.ts';
import { profileFreshness, readAgo } from '../broker/broker.ts';
import { cacheAccount } from '../cache/account.ts';
import { callerTtlMs } from '../claude/helper-ttl.ts';
import { fingerprint } from '../secret/value.ts';
import { fail, ok, skip, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from './state.ts';
import type { Profile } from '../config/config.ts';

/** The keychain may take its full bound on each of the three calls of a round trip. */
const CACHE_CHECK_TIMEOUT_MS = 7_000;

/** The cache checks in order, each a function below over one shared context. */
export function cacheChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const context: CheckContext = { deps, state };
  return [
    { id: 'cache.backend', layer: 'cache', title: 'cache backend', timeoutMs: 5_000, run: () => checkCacheBackend(context) },
    {
      id: 'cache.round-trip',
      layer: 'cache',
      title: 'cache round trip',
      timeoutMs: CACHE_CHECK_TIMEOUT_MS,
      run: () => checkCacheRoundTrip(context),
    },
    { id: 'cache.entry', layer: 'cache', title: 'cached key', timeoutMs: 3_000, run: () => checkCachedKey(context) },
  ];
}

/** The backend the profile asks for, and what "auto" falls back to when the keychain refuses a write. */
export async function checkCacheBackend({ deps, state }: CheckContext): Promise<CheckOutcome> {
  if (!state.config) return skip('no usable configuration', 'fix the configuration first');
  const { cache } = state.config.profile;
  const setBy = state.config.sources['cache.backend'] ?? 'the default';
  const filesDir = keyFilesDir(deps.env);
  if (cache.backend === 'none') {
    state.cache = noCache;
    return warn(
      `no cache ("backend": "none", set by ${setBy}): every call reads the store`,
      'use "backend": "auto" unless this machine must keep nothing',
      { backend: 'none', configured: 'none' },
    );
  }
  if (cache.backend === 'file') {
    state.cache = fileCache(filesDir);
    return ok(`private files under ${filesDir} ("backend": "file", set by ${setBy})`, {
      backend: 'file',
      configured: 'file',
      dir: filesDir,
    });
  }
  const keychain = deps.keychain();
  try {
    // A write, not just a read: a keyring without an unlocked collection answers reads but refuses writes.
    await keychain.write(probeAccount(), 'keybroker-doctor-probe');
    await keychain.remove(probeAccount());
    state.cache = keychain;
    return ok(`the OS keychain ("backend": "${cache.backend}", set by ${setBy}; it accepted a write)`, {
      backend: 'keychain',
      configured: cache.backend,
    });
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    return keychainRefused(error, cache, setBy, filesDir, state);
  }
}

/** A keychain that refused: a FAIL when the profile insists on it, else the fallback "auto" uses instead. */
function keychainRefused(
  error: CacheUnavailable,
  cache: Profile['cache'],
  setBy: string,
  filesDir: string,
  state: DoctorState,
): CheckOutcome {
  if (cache.backend === 'keychain') {
    return {
      ...fail(`"backend": "keychain" (set by ${setBy}) but ${error.message}`, error.fix, {
        backend: 'keychain',
        configured: 'keychain',
      }),
      exitCode: error.exitCode,
    };
  }
  const fallback = cache.fallback;
  state.cache = fallback === 'file' ? fileCache(filesDir) : noCache;
  const instead = fallback === 'file' ? `private files under ${filesDir}` : 'no cache (every call reads the store)';
  const plain = plainKeychainReason(error.message);
  const reason = plain === error.message ? plain : `${plain}; in detail: ${error.message}`;
  const fix =
    fallback === 'none'
      ? 'set "cache": {"fallback": "file"} in the profile to cache the key in a private file (0600), or start a keyring'
      : error.fix;
  return warn(`"backend": "auto" found no usable keychain (${reason}); using ${instead} ("fallback": "${fallback}")`, fix, {
    backend: fallback,
    configured: 'auto',
    reason: error.message,
  });
}

/** Writes, reads back and deletes a throwaway entry in the cache in use. */
export async function checkCacheRoundTrip({ deps, state }: CheckContext): Promise<CheckOutcome> {
  const cache = state.cache;
  if (!cache) return skip('no cache backend could be used', 'fix the cache backend first');
  if (cache.kind === 'none') return skip('no cache in use');
  const account = probeAccount();
  const probe = `keybroker-doctor-probe-${process.getBuiltinModule('node:crypto').randomBytes(6).toString('hex')}`;
  const started = deps.now();
  await cache.write(account, probe);
  try {
    const back = await cache.read(account);
    if (back !== probe)
      return fail(
        `wrote a test entry to the ${cache.kind} cache but read back ${back === undefined ? 'nothing' : 'something else'}`,
        'set "cache": {"backend": "file"} in the profile, or fix the keychain',
      );
  } finally {
    await cache.remove(account);
  }
  const after = await cache.read(account);
  if (after !== undefined) return warn(`the ${cache.kind} cache kept a test entry after deleting it (${account})`, 'delete it by hand');
  return ok(`wrote, read and deleted a test entry in the ${cache.kind} cache in ${deps.now() - started} ms`, { backend: cache.kind });
}

/** The profile's cached entry: its fingerprint, version, age and freshness (the key is kept when the store gave none). */
export async function checkCachedKey({ deps, state }: CheckContext): Promise<CheckOutcome> {
  const cache = state.cache;
  if (!cache || !state.config) return skip('no cache backend could be used');
  if (cache.kind === 'none') return skip('no cache in use');
  const { profile } = state.config;
  const text = await cache.read(cacheAccount(profile, deps.osUser));
  if (text === undefined) return ok(`no key cached yet for profile "${profile.name}" (the next get caches one)`, { cached: false });
  const entry = parseEntry(text);
  if (!entry) return warn('the cached entry is not readable', "run 'keybroker cache clear'", { cached: false });
  const now = deps.now();
  const freshness = profileFreshness(entry, now, profile, callerTtlMs(deps.env));
  if (!state.key) {
    state.key = entry.key;
    state.keyFrom = `the cache (version ${entry.version})`;
  }
  const details = {
    cached: true,
    fingerprint: fingerprint(entry.key),
    version: entry.version,
    secret: entry.secret,
    fetchedAt: new Date(entry.fetchedAt).toISOString(),
    expiresAt: entry.expiresAt ? new Date(entry.expiresAt).toISOString() : undefined,
    freshness,
  };
  const about = `${fingerprint(entry.key)}, version ${entry.version} of "${entry.secret}", ${readAgo(now - entry.fetchedAt)}, ${freshness}`;
  if (freshness === 'expired')
    return warn(
      `cached ${about}: it has expired and will not be served`,
      'nothing to do if the store check passed: the next get replaces it',
      details,
    );
  if (state.version && state.version !== entry.version && state.keyFrom?.startsWith('the store')) {
    return ok(`cached ${about}; the store has version ${state.version}, which the next refresh picks up`, details);
  }
  return ok(`cached ${about}`, details);
}

/** A throwaway account that cannot collide with a profile's (profile accounts are "name:hash"). */
function probeAccount(): string {
  return `keybroker-doctor-probe/${process.pid}`;
}
