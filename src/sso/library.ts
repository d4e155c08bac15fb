// Part src/sso/: SSO access tokens for `oidc` profiles: login flows, refresh, the token source of get. May use: kernel, secret, config, loader, cache.
// What the OIDC chunk (src/sso/oidc-lib.ts, built with openid-client and jose) offers the rest of
// keybroker: types only here, so that nothing on the warm path parses either library.
import type { OidcConfig } from '../config/config.ts';
import { loadChunk } from '../loader/chunks.ts';

/** What a token endpoint answered, with the expiry made absolute (ms since epoch, this machine's clock). */
export interface TokenSet {
  accessToken: string;
  /** Absent when the identity provider did not rotate (or issue) one. */
  refreshToken?: string;
  expiresAt?: number;
  scope?: string;
  /** The issuer is a Claude apps gateway, which never issues a refresh token (whatever the scopes). */
  fromAppsGateway?: true;
}

/** What an access token says about itself when it is a JWT (read, not verified: the gateway verifies). */
export interface TokenClaims {
  iss?: string;
  sub?: string;
  aud: string[];
  exp?: number;
  iat?: number;
  jti?: string;
}

/** The issuer's discovery document, as far as keybroker's checks need it. */
export interface DiscoverySummary {
  issuer: string;
  tokenEndpoint?: string;
  deviceAuthorizationEndpoint?: string;
  authorizationEndpoint?: string;
  grantTypes?: string[];
  codeChallengeMethods?: string[];
  /** Set only by a Claude apps gateway (Anthropic's own gateway, `claude gateway`), in its RFC 8414 metadata. */
  gatewayProtocolVersion?: number;
}

export interface SsoContext {
  /** The keybroker profile, for the login command in messages. */
  profile: string;
  timeoutMs: number;
  debug(message: string): void;
}

export interface LoginIo {
  /** One line on stderr for the person at the keyboard. */
  say(line: string): void;
  openBrowser(url: string): Promise<void>;
}

export interface SsoLibrary {
  discover(oidc: OidcConfig, context: SsoContext): Promise<DiscoverySummary>;
  /** RFC 8628: prints the address and code, polls as the server says. */
  deviceLogin(oidc: OidcConfig, context: SsoContext, io: LoginIo): Promise<TokenSet>;
  /** Authorization code + PKCE with a loopback redirect (RFC 8252). */
  browserLogin(oidc: OidcConfig, context: SsoContext, io: LoginIo): Promise<TokenSet>;
  /** Throws NotAuthenticated on invalid_grant (session ended, user disabled, token reused). */
  refresh(oidc: OidcConfig, context: SsoContext, refreshToken: string): Promise<TokenSet>;
  /** RFC 8693: trades an access token for one with the gateway's audience. */
  exchange(oidc: OidcConfig, context: SsoContext, accessToken: string): Promise<TokenSet>;
  /** Undefined when the token is not a JWT (an opaque token). */
  readClaims(token: string): TokenClaims | undefined;
}

let loaded: Promise<SsoLibrary> | undefined;
/** Loads the chunk once per run; only a refresh, a login or a check calls this. */
export function loadSsoLibrary(debug: (message: string) => void): Promise<SsoLibrary> {
  loaded ??= loadChunk('sso', debug) as Promise<SsoLibrary>;
  return loaded;
}
