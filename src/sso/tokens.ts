// An `oidc` profile's tokens: the refresh token kept in the key cache's backend (keychain, or a
// private file only with "fallback": "file"), the token source `get` refreshes through (the broker
// core calls it under its single-flight lock and caches the access token like a key), login and
// logout. Only this file's callers of loadSsoLibrary() parse openid-client and jose.
import type { Profile, OidcConfig } from '../config/config.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import type { CacheEntry } from '../cache/entry.ts';
import { serializeEntry } from '../cache/entry.ts';
import { cacheAccount, refreshTokenAccount } from '../cache/account.ts';
import { CacheUnavailable, NotAuthenticated, UnusableKey } from '../kernel/errors.ts';
import { fingerprint, keyProblem } from '../secret/value.ts';
import type { LoginIo, SsoContext, SsoLibrary, TokenSet } from './library.ts';

export interface SsoDeps {
  profile: Profile & { oidc: OidcConfig };
  /** The same backend as the key cache: the access token as an entry, the refresh token next to it. */
  cache: CacheStore;
  now(): number;
  loadLibrary(): Promise<SsoLibrary>;
  warn(line: string): void;
  debug(message: string): void;
}

export function isOidcProfile(profile: Profile): profile is Profile & { oidc: OidcConfig } {
  return profile.oidc !== undefined;
}

export function loginCommandFor(profile: Profile): string {
  return `keybroker login --profile ${profile.name}`;
}

function context(deps: SsoDeps): SsoContext {
  return { profile: deps.profile.name, timeoutMs: deps.profile.timeoutMs, debug: deps.debug };
}

interface StoredRefreshToken {
  v: 1;
  refreshToken: string;
  /** When it was issued to this machine (ms since epoch), for status. */
  storedAt: number;
}

export async function readRefreshToken(deps: Pick<SsoDeps, 'cache' | 'profile'>): Promise<StoredRefreshToken | undefined> {
  const text = await deps.cache.read(refreshTokenAccount(deps.profile));
  // Stryker disable next-line ConditionalExpression: equivalent, JSON.parse throws on undefined and the catch below answers the same
  if (text === undefined) return undefined;
  try {
    const data = JSON.parse(text) as Partial<StoredRefreshToken>;
    if (data.v === 1 && typeof data.refreshToken === 'string' && data.refreshToken && typeof data.storedAt === 'number')
      return data as StoredRefreshToken;
  } catch {
    // unreadable: as absent
  }
  return undefined;
}

/**
 * Keeps a refresh token where the profile's cache lives. A cache that settled on "none" (no
 * keychain, no file fallback) cannot keep it: that is an error, never a silent plaintext file.
 */
async function storeRefreshToken(deps: SsoDeps, refreshToken: string): Promise<void> {
  const account = refreshTokenAccount(deps.profile);
  await deps.cache.write(account, JSON.stringify({ v: 1, refreshToken, storedAt: deps.now() } satisfies StoredRefreshToken));
  if (deps.cache.kind === 'none') throw noTokenStore(deps);
}

/** Before the IdP is asked anything: a sign-in with nowhere to keep it would be lost after the user signed in. */
async function refuseWithoutTokenStore(deps: SsoDeps): Promise<void> {
  // One read settles what `auto` uses (the keychain, or its fallback); a named keychain that fails throws here.
  await deps.cache.read(refreshTokenAccount(deps.profile));
  if (deps.cache.kind === 'none') throw noTokenStore(deps);
}

function noTokenStore(deps: SsoDeps): CacheUnavailable {
  return new CacheUnavailable(
    `there is no keychain to keep the sign-in of profile "${deps.profile.name}" in`,
    'unlock or start the keychain (Secret Service, macOS Keychain, Credential Manager), or set "cache": {"fallback": "file"} to allow a private file',
  );
}

/** The cache entry for an access token: the token, its jti (or fingerprint) as the version, its issuer, its exp. */
function entryFor(tokens: TokenSet, deps: Pick<SsoDeps, 'profile' | 'now'>, library: SsoLibrary): CacheEntry {
  const problem = keyProblem(tokens.accessToken);
  if (problem) {
    throw new UnusableKey(
      `the access token from ${deps.profile.oidc.issuer} is not something Claude Code can send: ${problem}`,
      "ask your admin to check the identity provider's token format",
    );
  }
  const claims = library.readClaims(tokens.accessToken);
  const entry: CacheEntry = {
    key: tokens.accessToken,
    version: claims?.jti ?? fingerprint(tokens.accessToken),
    secret: deps.profile.oidc.issuer,
    fetchedAt: deps.now(),
  };
  if (tokens.expiresAt !== undefined) entry.expiresAt = tokens.expiresAt;
  return entry;
}

/** Trades the IdP's token for the gateway's when the profile has an "exchange" section. */
async function maybeExchange(deps: SsoDeps, library: SsoLibrary, tokens: TokenSet): Promise<TokenSet> {
  if (!deps.profile.oidc.exchange) return tokens;
  const exchanged = await library.exchange(deps.profile.oidc, context(deps), tokens.accessToken);
  // Never serve it longer than the sign-in it came from.
  if (tokens.expiresAt !== undefined) exchanged.expiresAt = Math.min(exchanged.expiresAt ?? Infinity, tokens.expiresAt);
  return exchanged;
}

/**
 * The broker's source for an `oidc` profile (BrokerDeps.fetchEntry): refreshes with the stored
 * refresh token. The broker calls it under the profile's single-flight lock, so one process at a
 * time spends a refresh token; a rotated one is stored before the access token is returned.
 */
export function tokenSource(deps: SsoDeps): () => Promise<CacheEntry> {
  return async () => {
    const stored = await readRefreshToken(deps);
    if (!stored) {
      throw new NotAuthenticated(
        `profile "${deps.profile.name}" is not signed in to ${deps.profile.oidc.issuer}`,
        `run ${loginCommandFor(deps.profile)}`,
      );
    }
    const library = await deps.loadLibrary();
    deps.debug(`refreshing the access token at ${deps.profile.oidc.issuer}`);
    let tokens: TokenSet;
    try {
      tokens = await library.refresh(deps.profile.oidc, context(deps), stored.refreshToken);
    } catch (error) {
      if (error instanceof NotAuthenticated) await forgetAccessToken(deps);
      throw error;
    }
    if (tokens.refreshToken && tokens.refreshToken !== stored.refreshToken) {
      // Rotation: the old refresh token is spent. Keep the new one before anything is printed.
      try {
        await storeRefreshToken(deps, tokens.refreshToken);
        deps.debug('stored the rotated refresh token');
      } catch (error) {
        if (!(error instanceof CacheUnavailable)) throw error;
        deps.warn(
          `keybroker: the renewed sign-in could not be kept (${error.line()}); after this token expires, run ${loginCommandFor(deps.profile)}`,
        );
      }
    }
    return entryFor(await maybeExchange(deps, library, tokens), deps, library);
  };
}

/**
 * The identity provider refused the refresh (invalid_grant: the session ended, the account was
 * disabled): nothing from that sign-in is handed out again, not even an access token that still
 * looks fresh to the cache. Fail closed; the gateway's own `exp` check ends the one Claude Code holds.
 */
async function forgetAccessToken(deps: SsoDeps): Promise<void> {
  try {
    if (await deps.cache.remove(cacheAccount(deps.profile))) deps.debug('the sign-in was refused: removed the cached access token');
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    deps.debug(`the sign-in was refused; the cached access token could not be removed: ${error.message}`);
  }
}

export type LoginFlow = 'device' | 'browser';

/** `keybroker login` for an `oidc` profile: the interactive sign-in, then both tokens cached. */
export async function ssoLogin(deps: SsoDeps, io: LoginIo, flow: LoginFlow = deps.profile.oidc.flow ?? 'device'): Promise<CacheEntry> {
  await refuseWithoutTokenStore(deps);
  const library = await deps.loadLibrary();
  io.say(
    `signing in to ${deps.profile.oidc.issuer} (${flow === 'device' ? 'device code' : 'browser'} flow) for profile "${deps.profile.name}"`,
  );
  const tokens =
    flow === 'device'
      ? await library.deviceLogin(deps.profile.oidc, context(deps), io)
      : await library.browserLogin(deps.profile.oidc, context(deps), io);
  if (tokens.refreshToken) {
    await storeRefreshToken(deps, tokens.refreshToken);
  } else {
    // The Claude apps gateway never issues one: asking the admin about offline_access would send them looking for nothing.
    const why = tokens.fromAppsGateway ? 'a Claude apps gateway issues none' : 'is the "offline_access" scope allowed for this client?';
    io.say(`${deps.profile.oidc.issuer} issued no refresh token (${why}): get works until this token expires, then run login again`);
  }
  const entry = entryFor(await maybeExchange(deps, library, tokens), deps, library);
  try {
    await deps.cache.write(cacheAccount(deps.profile), serializeEntry(entry));
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    deps.warn(`keybroker: the access token was not cached: ${error.line()}`);
  }
  const left = entry.expiresAt !== undefined ? `, valid for ${Math.round((entry.expiresAt - deps.now()) / 1000)} s` : '';
  io.say(
    `signed in: access token ${fingerprint(entry.key)}${left}${tokens.refreshToken ? `; the refresh token is kept in the ${deps.cache.kind === 'keychain' ? 'keychain' : 'private file cache'}` : ''}`,
  );
  return entry;
}
