// The OIDC chunk: every protocol step of an `oidc` profile, through openid-client (a certified
// relying party) and jose (JWT claims). Built into its own chunk (bin/build.ts) and loaded only
// for a refresh, a login or a check: a warm `get` parses neither library.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as client from 'openid-client';
import { decodeJwt } from 'jose';
import type { OidcConfig } from '../config/config.ts';
import { ConfigError, NotAuthenticated, StoreUnreachable } from '../kernel/errors.ts';
import { checkLoopbackOwner } from '../kernel/loopback-owner.ts';
import { isLoopbackHost } from '../kernel/transport.ts';
import type { DiscoverySummary, LoginIo, SsoContext, SsoLibrary, TokenClaims, TokenSet } from './library.ts';

const DEFAULT_SCOPES = ['openid', 'offline_access'];

/** Plain HTTP only to this machine (a test OP, a local proxy); anything else must be HTTPS. */
function isLoopback(url: URL): boolean {
  return isLoopbackHost(url.hostname);
}

function loginFix(context: SsoContext): string {
  return `run keybroker login --profile ${context.profile}`;
}

/** Every request to the identity provider: a plain-HTTP port on this machine must be the developer's. */
const ownedLoopbackFetch: client.CustomFetch = (url, options) => {
  checkLoopbackOwner(url, { what: 'the identity provider', carries: 'your sign-in (codes and tokens)' });
  return fetch(url, options as RequestInit);
};

/** Discovery results per issuer for this run (a login discovers once, then uses the endpoints). */
const configurations = new Map<string, Promise<client.Configuration>>();

function configure(oidc: OidcConfig, context: SsoContext): Promise<client.Configuration> {
  const key = `${oidc.issuer} ${oidc.clientId}`;
  let found = configurations.get(key);
  if (!found) {
    found = discoverConfiguration(oidc, context);
    found.catch(() => configurations.delete(key));
    configurations.set(key, found);
  }
  return found;
}

async function discoverConfiguration(oidc: OidcConfig, context: SsoContext): Promise<client.Configuration> {
  const issuer = new URL(oidc.issuer);
  if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && isLoopback(issuer))) {
    throw new ConfigError(`the issuer ${oidc.issuer} is not HTTPS`, "use the identity provider's https:// issuer URL");
  }
  const options: client.DiscoveryRequestOptions = {
    timeout: Math.ceil(context.timeoutMs / 1000),
    [client.customFetch]: ownedLoopbackFetch,
    ...(issuer.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
  };
  let config: client.Configuration;
  try {
    config = await client.discovery(issuer, oidc.clientId, undefined, client.None(), options);
  } catch (openIdError) {
    // An OAuth 2.0 authorization server (the Claude apps gateway) publishes RFC 8414 metadata instead.
    if (isTransportFailure(openIdError)) throw mapError(openIdError, oidc, context, `discovery of ${oidc.issuer}`);
    try {
      config = await client.discovery(issuer, oidc.clientId, undefined, client.None(), { ...options, algorithm: 'oauth2' });
    } catch {
      throw mapError(openIdError, oidc, context, `discovery of ${oidc.issuer} (neither OpenID configuration nor OAuth 2.0 metadata)`);
    }
    context.debug(`${oidc.issuer} has no OpenID configuration; using its OAuth 2.0 authorization server metadata`);
  }
  config.timeout = Math.ceil(context.timeoutMs / 1000);
  context.debug(`discovered ${oidc.issuer}: token endpoint ${config.serverMetadata().token_endpoint}`);
  return config;
}

/** No answer at all (refused, reset, DNS, timeout), as opposed to an answer keybroker will not accept. */
function isTransportFailure(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (error as { code?: string }).code;
  const name = (error as Error).name;
  return name === 'TimeoutError' || name === 'AbortError' || error instanceof TypeError || Boolean(code && /^E[A-Z]+$/.test(code));
}

/** The parameters that say which API the token is for: scope and the audience or resource indicator. */
function tokenParameters(oidc: OidcConfig, withScope: boolean): Record<string, string> {
  const parameters: Record<string, string> = {};
  if (withScope) parameters['scope'] = (oidc.scopes ?? DEFAULT_SCOPES).join(' ');
  if (oidc.resource) parameters['resource'] = oidc.resource;
  if (oidc.audience) parameters['audience'] = oidc.audience;
  return parameters;
}

function toTokenSet(response: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): TokenSet {
  const set: TokenSet = { accessToken: response.access_token };
  if (response.refresh_token) set.refreshToken = response.refresh_token;
  const expiresIn = response.expiresIn();
  const claims = readClaims(response.access_token);
  // The token's own exp is what the gateway checks; expires_in is the fallback for opaque tokens.
  if (claims?.exp !== undefined) set.expiresAt = claims.exp * 1000;
  else if (expiresIn !== undefined) set.expiresAt = Date.now() + expiresIn * 1000;
  if (response.scope) set.scope = response.scope;
  return set;
}

/** openid-client's errors as keybroker's: what failed at the identity provider, and what to do. */
function mapError(error: unknown, oidc: OidcConfig, context: SsoContext, what: string): Error {
  if (error instanceof client.ResponseBodyError) {
    const description = error.error_description ? `: ${error.error_description}` : '';
    if (error.error === 'invalid_grant') {
      return new NotAuthenticated(
        `${oidc.issuer} refused the sign-in for profile "${context.profile}" (${error.error}${description}): the session ended or the account was disabled`,
        loginFix(context),
      );
    }
    if (error.error === 'invalid_client' || error.error === 'unauthorized_client') {
      return new ConfigError(
        `${oidc.issuer} refused client "${oidc.clientId}" in ${what} (${error.error}${description})`,
        'ask your admin whether "clientId" is right and the client may use this grant',
      );
    }
    if (error.status >= 500 || error.error === 'temporarily_unavailable') {
      return new StoreUnreachable(`${oidc.issuer} failed ${what} (HTTP ${error.status}: ${error.error})`, 'try again in a minute');
    }
    return new NotAuthenticated(`${oidc.issuer} refused ${what} (${error.error}${description})`, loginFix(context));
  }
  if (error instanceof client.AuthorizationResponseError) {
    return new NotAuthenticated(
      `the sign-in at ${oidc.issuer} ended with ${error.error}${error.error_description ? `: ${error.error_description}` : ''}`,
      loginFix(context),
    );
  }
  if (error instanceof ConfigError || error instanceof NotAuthenticated || error instanceof StoreUnreachable) return error;
  // openid-client wraps what its fetch threw: a refusal of ownedLoopbackFetch stays what it is.
  if ((error as { cause?: unknown }).cause instanceof ConfigError) return (error as { cause: ConfigError }).cause;
  const cause = (error as { cause?: { code?: string } }).cause;
  const code = cause?.code ?? (error as { code?: string }).code;
  const name = (error as Error).name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new StoreUnreachable(
      `${oidc.issuer} did not answer ${what} within ${context.timeoutMs} ms`,
      'check your network or VPN, or raise "timeout" in the profile',
    );
  }
  if (error instanceof TypeError || (code && /^E[A-Z]+$/.test(code))) {
    return new StoreUnreachable(
      `cannot reach ${oidc.issuer} for ${what}${code ? ` (${code})` : ''}`,
      'check your network or VPN and the "issuer" URL',
    );
  }
  // Anything else is the provider answering in a way openid-client will not accept: say so, fail closed.
  return new StoreUnreachable(
    `${what} at ${oidc.issuer} failed: ${(error as Error).message}`,
    'check the "issuer" URL and the identity provider\'s configuration (keybroker doctor)',
  );
}

/** A sign-in's tokens, marked when the issuer is a Claude apps gateway (its metadata names its protocol version). */
function withIssuerKind(tokens: TokenSet, config: client.Configuration): TokenSet {
  return typeof config.serverMetadata()['gateway_protocol_version'] === 'number' ? { ...tokens, fromAppsGateway: true } : tokens;
}

async function discover(oidc: OidcConfig, context: SsoContext): Promise<DiscoverySummary> {
  const metadata = (await configure(oidc, context)).serverMetadata();
  const summary: DiscoverySummary = { issuer: metadata.issuer };
  if (metadata.token_endpoint) summary.tokenEndpoint = metadata.token_endpoint;
  if (metadata.device_authorization_endpoint) summary.deviceAuthorizationEndpoint = metadata.device_authorization_endpoint;
  if (metadata.authorization_endpoint) summary.authorizationEndpoint = metadata.authorization_endpoint;
  if (metadata.grant_types_supported) summary.grantTypes = metadata.grant_types_supported;
  if (metadata.code_challenge_methods_supported) summary.codeChallengeMethods = metadata.code_challenge_methods_supported;
  const gatewayProtocol = metadata['gateway_protocol_version'];
  if (typeof gatewayProtocol === 'number') summary.gatewayProtocolVersion = gatewayProtocol;
  return summary;
}

async function deviceLogin(oidc: OidcConfig, context: SsoContext, io: LoginIo): Promise<TokenSet> {
  const config = await configure(oidc, context);
  if (!config.serverMetadata().device_authorization_endpoint) {
    throw new ConfigError(
      `${oidc.issuer} offers no device authorization endpoint`,
      'set "flow": "browser" in the profile\'s "oidc" section',
    );
  }
  try {
    const started = await client.initiateDeviceAuthorization(config, tokenParameters(oidc, true));
    io.say(`to sign in, open ${started.verification_uri} and enter the code ${started.user_code}`);
    if (started.verification_uri_complete) io.say(`(or open ${started.verification_uri_complete})`);
    io.say(`waiting for the sign-in (the code expires in ${Math.round(started.expires_in / 60)} min)`);
    await io.openBrowser(started.verification_uri_complete ?? started.verification_uri);
    // Polls at the server's interval, slowing down when told to (RFC 8628 §3.5).
    const response = await client.pollDeviceAuthorizationGrant(config, started, tokenParameters(oidc, false));
    return withIssuerKind(toTokenSet(response), config);
  } catch (error) {
    throw mapError(error, oidc, context, 'the device sign-in');
  }
}

async function browserLogin(oidc: OidcConfig, context: SsoContext, io: LoginIo): Promise<TokenSet> {
  const config = await configure(oidc, context);
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const callback = await listenForCallback(oidc.redirectPort ?? 0, state);
  try {
    const redirectUri = `http://127.0.0.1:${callback.port}/callback`;
    const url = client.buildAuthorizationUrl(config, {
      ...tokenParameters(oidc, true),
      redirect_uri: redirectUri,
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      // OpenID Connect Core §11: offline_access (a refresh token) is granted only with prompt=consent.
      ...((oidc.scopes ?? DEFAULT_SCOPES).includes('offline_access') ? { prompt: 'consent' } : {}),
    });
    io.say(`to sign in, open ${url.href}`);
    await io.openBrowser(url.href);
    const returned = await callback.received;
    const response = await client.authorizationCodeGrant(
      config,
      returned,
      { pkceCodeVerifier: verifier, expectedState: state },
      { redirect_uri: redirectUri, ...tokenParameters(oidc, false) },
    );
    return withIssuerKind(toTokenSet(response), config);
  } catch (error) {
    throw mapError(error, oidc, context, 'the browser sign-in');
  } finally {
    callback.close();
  }
}

/**
 * The loopback redirect target. Any local user can send it a request: only the one carrying this
 * login's state ends the wait; any other /callback is answered 400 and the wait goes on.
 */
async function listenForCallback(port: number, state: string): Promise<{ port: number; received: Promise<URL>; close(): void }> {
  let deliver!: (url: URL) => void;
  const received = new Promise<URL>((resolve) => (deliver = resolve));
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    if (url.pathname !== '/callback') {
      response.writeHead(404).end();
      return;
    }
    if (url.searchParams.get('state') !== state) {
      response
        .writeHead(400, { 'content-type': 'text/plain; charset=utf-8' })
        .end('keybroker: this answer is not for the sign-in in progress (wrong state); it was ignored.\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('keybroker: signed in. You can close this tab.\n');
    deliver(url);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new ConfigError(
          `cannot listen on 127.0.0.1:${port} for the sign-in redirect (${error.code})`,
          'free that port or change "redirectPort"',
        ),
      ),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
  return { port: (server.address() as AddressInfo).port, received, close: () => server.close() };
}

async function refresh(oidc: OidcConfig, context: SsoContext, refreshToken: string): Promise<TokenSet> {
  const config = await configure(oidc, context);
  try {
    return toTokenSet(await client.refreshTokenGrant(config, refreshToken, tokenParameters(oidc, false)));
  } catch (error) {
    throw mapError(error, oidc, context, 'the token refresh');
  }
}

async function exchange(oidc: OidcConfig, context: SsoContext, accessToken: string): Promise<TokenSet> {
  if (!oidc.exchange) throw new ConfigError('no "exchange" section', 'add "exchange": {"tokenEndpoint", "audience"}');
  const endpoint = new URL(oidc.exchange.tokenEndpoint);
  const config = new client.Configuration({ issuer: oidc.issuer, token_endpoint: endpoint.href }, oidc.clientId, undefined, client.None());
  config.timeout = Math.ceil(context.timeoutMs / 1000);
  config[client.customFetch] = ownedLoopbackFetch;
  if (endpoint.protocol === 'http:' && isLoopback(endpoint)) client.allowInsecureRequests(config);
  try {
    const response = await client.genericGrantRequest(config, 'urn:ietf:params:oauth:grant-type:token-exchange', {
      subject_token: accessToken,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      requested_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      audience: oidc.exchange.audience,
    });
    const set = toTokenSet(response);
    delete set.refreshToken; // the exchanged token is re-made from the IdP's, never refreshed on its own
    return set;
  } catch (error) {
    throw mapError(error, oidc, context, `the token exchange at ${endpoint.href}`);
  }
}

function readClaims(token: string): TokenClaims | undefined {
  try {
    const claims = decodeJwt(token);
    const aud = claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    const result: TokenClaims = { aud };
    if (claims.iss !== undefined) result.iss = claims.iss;
    if (claims.sub !== undefined) result.sub = claims.sub;
    if (claims.exp !== undefined) result.exp = claims.exp;
    if (claims.iat !== undefined) result.iat = claims.iat;
    if (claims.jti !== undefined) result.jti = claims.jti;
    return result;
  } catch {
    return undefined;
  }
}

// The chunk's exports are the library (checked against SsoLibrary here).
export { discover, deviceLogin, browserLogin, refresh, exchange, readClaims };
const _shape: SsoLibrary = { discover, deviceLogin, browserLogin, refresh, exchange, readClaims };
void _shape;
