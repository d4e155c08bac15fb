// A real OpenID Provider for the SSO tests: npm's `oidc-provider` (a certified OP) on 127.0.0.1,
// configured as a company IdP would be for keybroker: a public native client, the device flow,
// PKCE, refresh-token rotation, short access tokens, and resource indicators so that the access
// tokens for the gateway are JWTs with the gateway as `aud`. Its own dev interaction pages
// (login form, consent form) are what a test "browser" fills in.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'keybroker-cli';

interface TokenRequest {
  at: number;
  grantType: string;
  /** Only a prefix: enough to tell tokens apart in assertions, never a whole token in a log. */
  refreshToken?: string;
  status: number;
  error?: string;
}

export interface TestOp {
  issuer: string;
  /** The gateway's resource indicator: the `aud` of every access token. */
  resource: string;
  /** Every request to the token endpoint, in order. */
  tokens: TokenRequest[];
  /** Every request the OP answered (method and path). */
  requests: { method: string; path: string }[];
  /** Disables an account: its refresh fails with invalid_grant (offboarding). */
  disable(accountId: string): void;
  /** Revokes every grant of an account at the OP. */
  revokeGrants(accountId: string): Promise<number>;
  /** Completes a device sign-in as a person would: the OP's own pages, the user code, login, consent. */
  completeDeviceLogin(verificationUri: string, userCode: string, accountId: string): Promise<void>;
  /** Follows an authorization URL through login and consent; returns the redirect to the client. */
  completeBrowserLogin(authorizationUrl: string, accountId: string): Promise<string>;
  stop(): Promise<void>;
}

/** A confidential web client, as a server-side gateway (the Claude apps gateway) is registered at the IdP. */
export interface ConfidentialClient {
  clientId: string;
  secret: string;
  redirectUri: string;
}

export async function startTestOp(
  options: { accessTokenTtl?: number; resource?: string; confidential?: ConfidentialClient } = {},
): Promise<TestOp> {
  const server = http.createServer();
  // Idle connections kept for a minute, as IdPs' front ends do (nginx 75 s). Node's 5 s default races
  // the client's reuse of its discovery connection for the token request after a sign-in that took
  // about that long: the browser-flow test met "UND_ERR_SOCKET" (other side closed) on a busy machine.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const resource = options.resource ?? 'https://llm-gateway.test/';
  const disabled = new Set<string>();
  const grantsByAccount = new Map<string, Set<string>>();
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'test-op-1', alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token', 'authorization_code'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
      ...(options.confidential
        ? [
            {
              client_id: options.confidential.clientId,
              client_secret: options.confidential.secret,
              token_endpoint_auth_method: 'client_secret_post',
              grant_types: ['authorization_code', 'refresh_token'],
              response_types: ['code'],
              redirect_uris: [options.confidential.redirectUri],
            },
          ]
        : []),
    ],
    jwks: { keys: [jwk] },
    // The public CLI client must use PKCE; a confidential client may (as its own server decides).
    pkce: { required: (_ctx: unknown, client: { clientAuthMethod?: string }) => client.clientAuthMethod === 'none' },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    rotateRefreshToken: true,
    scopes: ['openid', 'offline_access', 'gateway', 'email', 'profile'],
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new Error(`unknown resource ${indicator}`);
          return {
            scope: 'gateway',
            audience: resource,
            accessTokenTTL: options.accessTokenTtl ?? 60,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: { AccessToken: options.accessTokenTtl ?? 60, RefreshToken: 3600, DeviceCode: 600, Grant: 3600, Interaction: 600, Session: 3600 },
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }, code: { scopes: Set<string> }) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    findAccount: async (_ctx: unknown, id: string) =>
      disabled.has(id)
        ? undefined
        : { accountId: id, claims: async () => ({ sub: id, email: `${id}@example.test`, email_verified: true, name: id }) },
    // The dev consent page grants what was asked; no other policy.
  } as ConstructorParameters<typeof Provider>[1]);
  provider.proxy = false;

  const tokens: TokenRequest[] = [];
  const requests: { method: string; path: string }[] = [];
  provider.use(async (ctx, next) => {
    requests.push({ method: ctx.method, path: ctx.path });
    await next();
    if (ctx.path === '/token' && ctx.method === 'POST') {
      const params = (ctx as unknown as { oidc?: { params?: Record<string, string | undefined> } }).oidc?.params ?? {};
      const body = ctx.body as { error?: string } | undefined;
      const entry: TokenRequest = { at: Date.now(), grantType: String(params['grant_type'] ?? ''), status: ctx.status };
      if (params['refresh_token']) entry.refreshToken = params['refresh_token'].slice(0, 16);
      if (body && typeof body === 'object' && 'error' in body && body.error) entry.error = body.error;
      tokens.push(entry);
    }
  });
  provider.on('grant.saved', (grant: { jti: string; accountId?: string }) => {
    if (!grant.accountId) return;
    (grantsByAccount.get(grant.accountId) ?? grantsByAccount.set(grant.accountId, new Set()).get(grant.accountId)!).add(grant.jti);
  });
  server.on('request', provider.callback());

  return {
    issuer,
    resource,
    tokens,
    requests,
    disable: (id) => void disabled.add(id),
    async revokeGrants(accountId) {
      let revoked = 0;
      for (const grantId of grantsByAccount.get(accountId) ?? []) {
        // The OP's own revocation of a grant: its refresh and access tokens go with it.
        const grant = await provider.Grant.find(grantId);
        if (!grant) continue;
        await grant.destroy();
        for (const model of [provider.RefreshToken, provider.AccessToken] as unknown as { revokeByGrantId(id: string): Promise<void> }[])
          await model.revokeByGrantId(grantId);
        revoked++;
      }
      return revoked;
    },
    async completeDeviceLogin(verificationUri, userCode, accountId) {
      // A new browser per sign-in (no session left from another person), the user-code page, then its form.
      const browser = cookieBrowser(issuer);
      let page = await browser.get(verificationUri);
      page = await browser.submit(page, { user_code: userCode });
      await browser.finishInteraction(page, accountId);
    },
    async completeBrowserLogin(authorizationUrl, accountId) {
      const browser = cookieBrowser(issuer);
      const page = await browser.get(authorizationUrl);
      return browser.finishInteraction(page, accountId);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Page {
  url: string;
  status: number;
  html: string;
  /** Set when the last response redirected out of the OP (to the client's redirect URI). */
  leftTo?: string;
}

/**
 * A minimal browser for the OP's dev pages (and, given more origins, a gateway's pages in front of
 * it): one cookie jar (cookies ignore the port), redirects, and form posts that say, as a browser
 * does, which page they came from (Origin, Sec-Fetch-Site).
 */
export function cookieBrowser(...origins: string[]) {
  const jar = new Map<string, string>();
  const allowed = new Set(origins.map((url) => new URL(url).origin));

  async function request(url: string, init: RequestInit = {}, from?: string): Promise<Page> {
    let current = url;
    let method = init.method ?? 'GET';
    let body = init.body;
    for (let hops = 0; hops < 20; hops++) {
      const target = new URL(current);
      if (!allowed.has(target.origin)) return { url: current, status: 302, html: '', leftTo: current };
      const headers: Record<string, string> = { cookie: [...jar].map(([name, value]) => `${name}=${value}`).join('; ') };
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      if (body && from) {
        headers['origin'] = new URL(from).origin;
        headers['sec-fetch-site'] = new URL(from).origin === target.origin ? 'same-origin' : 'cross-site';
      }
      const response = await fetch(current, { method, headers, body: body ?? null, redirect: 'manual' });
      for (const cookie of response.headers.getSetCookie()) {
        const [pair] = cookie.split(';');
        const [name, ...value] = pair!.split('=');
        jar.set(name!.trim(), value.join('='));
      }
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        current = new URL(location, current).href;
        method = 'GET';
        body = undefined;
        continue;
      }
      return { url: current, status: response.status, html: await response.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  /** Posts the page's first form with its hidden fields and `fields`. */
  async function submit(page: Page, fields: Record<string, string>): Promise<Page> {
    const form = /<form[^>]*>([\s\S]*?)<\/form>/i.exec(page.html);
    if (!form) throw new Error(`no form on ${page.url} (HTTP ${page.status}): ${page.html.slice(0, 300)}`);
    const action = /action="([^"]*)"/i.exec(form[0])?.[1] ?? page.url;
    const data = new URLSearchParams();
    for (const input of form[1]!.matchAll(/<input[^>]*>/gi)) {
      const name = /name="([^"]*)"/i.exec(input[0])?.[1];
      const value = /value="([^"]*)"/i.exec(input[0])?.[1] ?? '';
      if (name && !(name in fields)) data.set(name, value.replace(/&amp;/g, '&'));
    }
    for (const [name, value] of Object.entries(fields)) data.set(name, value);
    return request(new URL(action.replace(/&amp;/g, '&'), page.url).href, { method: 'POST', body: data.toString() }, page.url);
  }

  /** Login and consent on the OP's dev pages until the OP is done; returns where it sent the browser. */
  async function finishInteraction(start: Page, accountId: string): Promise<string> {
    let page = start;
    for (let steps = 0; steps < 6; steps++) {
      if (page.leftTo) return page.leftTo;
      if (/name="login"/.test(page.html)) page = await submit(page, { login: accountId, password: 'any' });
      else if (/name="confirm"|Authorize|consent/i.test(page.html) && /<form/i.test(page.html)) page = await submit(page, {});
      else if (/Sign-in Success|success|signed in/i.test(page.html)) return page.url;
      else
        throw new Error(
          `unexpected page at ${page.url} (HTTP ${page.status}): ${page.html
            .replace(/<(style|script)[\s\S]*?<\/\1>/gi, '')
            .replace(/<[^>]+>/g, ' ')
            .replace(/\s+/g, ' ')
            .slice(0, 400)}`,
        );
    }
    throw new Error('the sign-in did not finish');
  }

  return { get: (url: string) => request(url), submit, finishInteraction };
}
