// Layer 2 for an `oidc` profile (in place of the store checks): the identity provider answers
// discovery with what the flow needs, a sign-in is kept (never printed), and the cached access
// token's audience, expiry and lifetime fit the gateway and Claude Code's TTL.
import { NotAuthenticated, ExitCode } from '../kernel/errors.ts';
import { formatDuration } from '../kernel/duration.ts';
import { fingerprint } from '../secret/value.ts';
import { openCache } from '../cache/select.ts';
import { cacheAccount } from '../cache/account.ts';
import { parseEntry } from '../cache/entry.ts';
import { expiryMarginMs, TOKEN_CLOCK_SLACK_MS } from '../broker/broker.ts';
import { callerTtlMs } from '../claude/helper-ttl.ts';
import { loadSsoLibrary, type SsoLibrary } from '../sso/library.ts';
import { isOidcProfile, loginCommandFor, readRefreshToken } from '../sso/tokens.ts';
import { fail, ok, skip, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { DoctorDeps, DoctorState } from './state.ts';

const IDP_TIMEOUT_MS = 4_000;

export function ssoChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  let library: SsoLibrary | undefined;
  const oidcProfile = () => (state.config && isOidcProfile(state.config.profile) ? state.config.profile : undefined);
  const needProfile = (): CheckOutcome | undefined =>
    oidcProfile() ? undefined : skip('no usable configuration', 'fix the configuration first');
  const cache = () =>
    openCache({
      backend: oidcProfile()!.cache.backend,
      fallback: oidcProfile()!.cache.fallback,
      env: deps.env,
      keychain: deps.keychain(),
      warn: () => {},
    });
  return [
    {
      id: 'sso.discovery',
      layer: 'store',
      title: 'identity provider',
      timeoutMs: IDP_TIMEOUT_MS + 1_000,
      async run() {
        const missing = needProfile();
        if (missing) return missing;
        const profile = oidcProfile()!;
        library = await loadSsoLibrary(deps.debug);
        const started = deps.now();
        let found;
        try {
          found = await library.discover(profile.oidc, { profile: profile.name, timeoutMs: IDP_TIMEOUT_MS, debug: deps.debug });
        } catch (error) {
          state.storeBlocked = `${profile.oidc.issuer} did not answer discovery`;
          throw error;
        }
        const ms = deps.now() - started;
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
        const wanted = [
          'refresh_token',
          ...(flow === 'device' ? ['urn:ietf:params:oauth:grant-type:device_code'] : ['authorization_code']),
        ];
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
      },
    },
    {
      id: 'sso.sign-in',
      layer: 'store',
      title: 'SSO sign-in',
      timeoutMs: 3_000,
      async run() {
        const missing = needProfile();
        if (missing) return missing;
        const profile = oidcProfile()!;
        const store = cache();
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
      },
    },
    {
      id: 'sso.token',
      layer: 'store',
      title: 'access token',
      timeoutMs: 3_000,
      async run() {
        const missing = needProfile();
        if (missing) return missing;
        const profile = oidcProfile()!;
        const text = await cache().read(cacheAccount(profile));
        const entry = text ? parseEntry(text) : undefined;
        if (!entry) return skip('no access token cached yet', 'run keybroker get (or keybroker login)');
        library ??= await loadSsoLibrary(deps.debug);
        const claims = library.readClaims(entry.key);
        const now = deps.now();
        const ttl = callerTtlMs(deps.env);
        const margin = expiryMarginMs(ttl, TOKEN_CLOCK_SLACK_MS);
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
        if (left <= 0)
          return skip(`${about} expired ${formatDuration(-left)} ago`, 'keybroker get refreshes it; if that fails, keybroker login');
        if (lifetime !== undefined && lifetime <= margin) {
          const fits = Math.floor((lifetime - TOKEN_CLOCK_SLACK_MS) / 2 / 1000) * 1000;
          return warn(
            `${about}; tokens live ${formatDuration(lifetime)}, less than Claude Code's TTL twice plus ${TOKEN_CLOCK_SLACK_MS / 1000} s (${formatDuration(margin)}): every get refreshes`,
            `set CLAUDE_CODE_API_KEY_HELPER_TTL_MS to at most ${fits} in Claude Code's settings "env"`,
            details,
          );
        }
        return ok(`${about}; ${Math.floor(left / 1000)} s left (refreshed from ${formatDuration(margin)} before expiry)`, details);
      },
    },
  ];
}
