// Layer 2 for an `oidc` profile (in place of the store checks): the identity provider answers
// discovery with what the flow needs, a sign-in is kept (never printed), and the cached access
// token's audience, expiry and lifetime fit the gateway and Claude Code's TTL.
import { NotAuthenticated, ExitCode } from '../kernel/errors.ts';
import { formatDuration } from '../kernel/duration.ts';
import { fingerprint } from '../secret/value.ts';
import { openCache } from '../cache/select.ts';
import { cacheAccount } from '../cache/account.ts';
import { parseEntry, type CacheEntry } from '../cache/entry.ts';
import { expiryMarginMs, TOKEN_CLOCK_SLACK_MS } from '../broker/broker.ts';
import { callerTtlMs } from '../claude/helper-ttl.ts';
import { loadSsoLibrary, type DiscoverySummary, type SsoLibrary, type TokenClaims } from '../sso/library.ts';
import { isOidcProfile, loginCommandFor, readRefreshToken } from '../sso/tokens.ts';
import { fail, ok, skip, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from './state.ts';
import type { OidcConfig, Profile } from '../config/config.ts';
import type { CacheStore } from '../cache/cache-store.ts';

const IDP_TIMEOUT_MS = 4_000;

/** The SSO checks' context: the OIDC library, loaded once by the first check that needs it. */
interface SsoCheckContext extends CheckContext {
  library?: SsoLibrary;
}

type OidcProfile = Profile & { oidc: OidcConfig };

/** The SSO checks in order (an `oidc` profile runs these instead of the store checks). */
export function ssoChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const context: SsoCheckContext = { deps, state };
  return [
    {
      id: 'sso.discovery',
      layer: 'store',
      title: 'identity provider',
      timeoutMs: IDP_TIMEOUT_MS + 1_000,
      run: () => checkDiscovery(context),
    },
    { id: 'sso.sign-in', layer: 'store', title: 'SSO sign-in', timeoutMs: 3_000, run: () => checkSignIn(context) },
    { id: 'sso.token', layer: 'store', title: 'access token', timeoutMs: 3_000, run: () => checkAccessToken(context) },
  ];
}

/** The profile when it is an `oidc` one (the configuration loaded), else undefined. */
function oidcProfile(state: DoctorState): OidcProfile | undefined {
  return state.config && isOidcProfile(state.config.profile) ? state.config.profile : undefined;
}

/** The cache the profile's tokens are kept in, opened as get opens it. */
function tokenCache(deps: DoctorDeps, profile: OidcProfile): CacheStore {
  return openCache({
    backend: profile.cache.backend,
    fallback: profile.cache.fallback,
    env: deps.env,
    keychain: deps.keychain(),
    warn: () => {},
  });
}

/** The issuer answers discovery; an issuer that does not blocks the later SSO calls. */
async function checkDiscovery(context: SsoCheckContext): Promise<CheckOutcome> {
  const { deps, state } = context;
  const profile = oidcProfile(state);
  if (!profile) return skip('no usable configuration', 'fix the configuration first');
  context.library = await loadSsoLibrary(deps.debug);
  const started = deps.now();
  let found: DiscoverySummary;
  try {
    found = await context.library.discover(profile.oidc, { profile: profile.name, timeoutMs: IDP_TIMEOUT_MS, debug: deps.debug });
  } catch (error) {
    state.storeBlocked = `${profile.oidc.issuer} did not answer discovery`;
    throw error;
  }
  return discoveryOutcome(profile, found, deps.now() - started);
}

/** What the discovery document offers against what the profile's flow needs: the endpoints, the grant types, PKCE. */
export function discoveryOutcome(profile: OidcProfile, found: DiscoverySummary, ms: number): CheckOutcome {
  const flow = profile.oidc.flow ?? 'device';
  const details = {
    issuer: found.issuer,
    tokenEndpoint: found.tokenEndpoint,
    deviceAuthorizationEndpoint: found.deviceAuthorizationEndpoint,
    grantTypes: found.grantTypes,
  };
  if (!found.tokenEndpoint)
    return {
      ...fail(`${found.issuer}'s discovery document names no token endpoint`, 'ask your admin: the issuer URL may be wrong', details),
      exitCode: ExitCode.config,
    };
  if (flow === 'device' && !found.deviceAuthorizationEndpoint) {
    return {
      ...fail(
        `${found.issuer} offers no device authorization endpoint, and the profile uses the device flow`,
        'set "flow": "browser" in the "oidc" section',
        details,
      ),
      exitCode: ExitCode.config,
    };
  }
  const wanted = ['refresh_token', ...(flow === 'device' ? ['urn:ietf:params:oauth:grant-type:device_code'] : ['authorization_code'])];
  const absent = found.grantTypes ? wanted.filter((grant) => !found.grantTypes!.includes(grant)) : [];
  if (absent.length)
    return warn(
      `${found.issuer} does not list the grant types ${absent.join(', ')}`,
      'ask your admin to allow them for the client',
      details,
    );
  if (flow === 'browser' && found.codeChallengeMethods && !found.codeChallengeMethods.includes('S256')) {
    return warn(`${found.issuer} does not list PKCE S256`, 'ask your admin to enable PKCE (S256) for the client', details);
  }
  const kind =
    found.gatewayProtocolVersion !== undefined
      ? ` (a Claude apps gateway, protocol ${found.gatewayProtocolVersion}: OAuth 2.0 metadata, no OpenID configuration)`
      : '';
  return ok(
    `${found.issuer} answered discovery in ${ms} ms${kind}: token endpoint ${found.tokenEndpoint}${flow === 'device' ? ', device flow offered' : ', authorization code flow'}`,
    details,
  );
}

/** A refresh token is kept (never shown), or at least a session token that has not ended yet. */
async function checkSignIn({ deps, state }: SsoCheckContext): Promise<CheckOutcome> {
  const profile = oidcProfile(state);
  if (!profile) return skip('no usable configuration', 'fix the configuration first');
  const store = tokenCache(deps, profile);
  const kept = await readRefreshToken({ cache: store, profile });
  if (!kept) {
    // An issuer that grants no refresh token (the Claude apps gateway): the sign-in is the cached token, until its expiry.
    const session = parseEntry((await store.read(cacheAccount(profile))) ?? '');
    if (session?.expiresAt !== undefined && session.expiresAt > deps.now()) {
      return warn(
        `signed in without a refresh token (${profile.oidc.issuer} issued none): the session token is cached until ${new Date(session.expiresAt).toISOString()}, then get exits 4`,
        `run ${loginCommandFor(profile)} when the session ends`,
        { backend: store.kind, refreshToken: false },
      );
    }
    const error = new NotAuthenticated(
      `profile "${profile.name}" is not signed in to ${profile.oidc.issuer} (no refresh token in the ${store.kind === 'none' ? 'cache: there is none' : store.kind})`,
      `run ${loginCommandFor(profile)}`,
    );
    return { ...fail(error.message, error.fix), exitCode: error.exitCode };
  }
  return ok(
    `a refresh token is kept in the ${store.kind === 'keychain' ? 'keychain' : 'private file cache'} (stored ${formatDuration(Math.max(0, deps.now() - kept.storedAt))} ago; never shown)`,
    { backend: store.kind, storedAt: new Date(kept.storedAt).toISOString() },
  );
}

/** The cached access token, read (not verified) for its audience, expiry and lifetime. */
async function checkAccessToken(context: SsoCheckContext): Promise<CheckOutcome> {
  const { deps, state } = context;
  const profile = oidcProfile(state);
  if (!profile) return skip('no usable configuration', 'fix the configuration first');
  const text = await tokenCache(deps, profile).read(cacheAccount(profile));
  const entry = text ? parseEntry(text) : undefined;
  if (!entry) return skip('no access token cached yet', 'run keybroker get (or keybroker login)');
  context.library ??= await loadSsoLibrary(deps.debug);
  return accessTokenOutcome(context, profile, entry, context.library.readClaims(entry.key));
}

/** The token fits: for the gateway's audience, unexpired, outliving twice Claude Code's TTL plus slack; a live one is kept for the gateway. */
export function accessTokenOutcome(
  { deps, state }: CheckContext,
  profile: OidcProfile,
  entry: CacheEntry,
  claims: TokenClaims | undefined,
): CheckOutcome {
  const now = deps.now();
  const margin = expiryMarginMs(callerTtlMs(deps.env), TOKEN_CLOCK_SLACK_MS);
  const left = entry.expiresAt !== undefined ? entry.expiresAt - now : undefined;
  const lifetime = claims?.exp !== undefined && claims.iat !== undefined ? (claims.exp - claims.iat) * 1000 : undefined;
  const details = {
    fingerprint: fingerprint(entry.key),
    audience: claims?.aud,
    subject: claims?.sub,
    expiresAt: entry.expiresAt && new Date(entry.expiresAt).toISOString(),
    secondsLeft: left !== undefined ? Math.floor(left / 1000) : undefined,
    lifetimeSeconds: lifetime && lifetime / 1000,
  };
  if (left !== undefined && left > 0 && !state.key) {
    state.key = entry.key;
    state.keyFrom = `the cached access token (${fingerprint(entry.key)})`;
  }
  const about = `${fingerprint(entry.key)}${claims?.sub ? ` for ${claims.sub}` : ''}${claims ? `, audience ${claims.aud.join(', ') || '(none)'}` : ' (not a JWT)'}`;
  const expected = profile.oidc.resource ?? profile.oidc.audience;
  if (claims && expected && !claims.aud.includes(expected)) {
    return warn(
      `${about}: not for ${expected}`,
      'ask your admin whether the identity provider issues tokens for the gateway\'s audience (and check "resource"/"audience")',
      details,
    );
  }
  if (left === undefined) return ok(`${about}; no expiry known`, details);
  if (left <= 0) return skip(`${about} expired ${formatDuration(-left)} ago`, 'keybroker get refreshes it; if that fails, keybroker login');
  if (lifetime !== undefined && lifetime <= margin) {
    // The largest whole second below (L − slack) / 2: at exactly that value the margin equals L and every get still refreshes.
    const fits = Math.ceil((lifetime - TOKEN_CLOCK_SLACK_MS) / 2 / 1000) * 1000 - 1000;
    return warn(
      `${about}; tokens live ${formatDuration(lifetime)}, less than Claude Code's TTL twice plus ${TOKEN_CLOCK_SLACK_MS / 1000} s (${formatDuration(margin)}): every get refreshes`,
      `set CLAUDE_CODE_API_KEY_HELPER_TTL_MS to at most ${fits} in Claude Code's settings "env"`,
      details,
    );
  }
  return ok(`${about}; ${Math.floor(left / 1000)} s left (refreshed from ${formatDuration(margin)} before expiry)`, details);
}
