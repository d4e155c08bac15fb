// Vault's OIDC login as `vault login -method=oidc` does it, for `keybroker login` (never `get`):
// the browser signs in, the callback comes to 127.0.0.1, and the token goes where the vault CLI keeps it.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { ConfigError, type KeybrokerError, NotAuthenticated, UsageError } from '../../src/kernel/errors.ts';
import { answerOf, LoginAuth, OidcAuthUrl } from './answers.ts';
import { deadline, send, unexpected, vaultMessage, type Vault, type VaultResponse } from './connection.ts';
import { loggedInAs, loginFix, oidcPort } from './token.ts';
import { writeFileAtomic } from '../../src/kernel/temp-files.ts';

const INTERACTIVE_LOGIN_MS = 300_000;

/** `keybroker login` for an oidc profile: the browser flow, then the token in ~/.vault-token. */
export async function interactiveLogin(
  vault: Vault,
  io: { say(line: string): void; openBrowser(url: string): Promise<void> },
): Promise<void> {
  const { auth, authMount, tokenFile } = vault;
  const result = await oidcBrowserLogin({
    port: oidcPort(vault),
    address: vault.address,
    role: auth.method === 'oidc' ? auth.role : undefined,
    exchange: (method, apiPath, body) => send(vault, deadline(vault, 'OIDC login'), method, apiPath, body === undefined ? {} : { body }),
    io,
    fail: (response, what) => unexpected(vault, response, deadline(vault, what), `auth/${authMount}`, loginFix(vault)),
    authMount,
  });
  writeTokenFile(tokenFile, result.token);
  // What this run knew about a token is stale now: the next read takes the new one.
  vault.session = undefined;
  vault.lookup = undefined;
  io.say(
    `Logged in to ${vault.where} as ${await loggedInAs(vault, result.token)}; the token is in ${tokenFile}, where the vault CLI keeps it.`,
  );
  if (vault.env['VAULT_TOKEN']?.trim()) {
    // As `vault login` warns: the variable wins over the file, for keybroker as for the vault CLI.
    io.say('VAULT_TOKEN is set and takes precedence over ~/.vault-token: unset it to use this login');
  }
}

/** Where `vault login` keeps the token: ~/.vault-token, 0600, replaced atomically. */
function writeTokenFile(file: string, tokenValue: string): void {
  writeFileAtomic(file, tokenValue, 0o600);
}

interface OidcLoginOptions {
  port: number;
  /** For messages. */
  address: string;
  role: string | undefined;
  authMount: string;
  exchange(method: string, apiPath: string, body?: unknown): Promise<VaultResponse>;
  fail(response: VaultResponse, what: string): KeybrokerError;
  io: { say(line: string): void; openBrowser(url: string): Promise<void> };
}

/**
 * Vault's OIDC login as `vault login -method=oidc` does it: ask Vault for the provider's auth URL
 * for a localhost redirect, let the browser sign in, take the code on 127.0.0.1, exchange it.
 */
async function oidcBrowserLogin(options: OidcLoginOptions): Promise<{ token: string }> {
  const redirectUri = `http://localhost:${options.port}/oidc/callback`;
  const clientNonce = randomBytes(20).toString('hex');
  // Any local user can call the callback: only the answer with the state of Vault's auth URL counts.
  let expectedState: string | undefined;
  const { server, callback } = await listenForCallback(options.port, (state) => expectedState !== undefined && state === expectedState);
  try {
    const started = await options.exchange('POST', `auth/${options.authMount}/oidc/auth_url`, {
      redirect_uri: redirectUri,
      client_nonce: clientNonce,
      ...(options.role ? { role: options.role } : {}),
    });
    const authUrl = authUrlOf(started, redirectUri, options);
    expectedState = new URL(authUrl).searchParams.get('state') ?? undefined;
    if (!expectedState)
      throw new ConfigError(
        `Vault's OIDC auth URL carries no state, so its callback cannot be told from a forged one`,
        'ask your Vault admin to check the OIDC auth method',
      );
    options.io.say(`Complete the login in your browser: ${authUrl}`);
    await options.io.openBrowser(authUrl);
    options.io.say(`waiting up to ${INTERACTIVE_LOGIN_MS / 60_000} minutes for the sign-in to come back to ${redirectUri}`);
    let timer: NodeJS.Timeout | undefined;
    const params = await Promise.race([
      callback,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new NotAuthenticated(
                `the browser login did not come back to ${redirectUri} within ${INTERACTIVE_LOGIN_MS / 60_000} minutes`,
                "run 'keybroker login' again",
              ),
            ),
          INTERACTIVE_LOGIN_MS,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (params.get('error')) {
      throw new NotAuthenticated(
        `the identity provider refused the login (${params.get('error')}: ${params.get('error_description') ?? ''})`,
        "check with your identity provider, then run 'keybroker login' again",
      );
    }
    const query = new URLSearchParams({ state: params.get('state') ?? '', code: params.get('code') ?? '', client_nonce: clientNonce });
    const exchanged = await options.exchange('GET', `auth/${options.authMount}/oidc/callback?${query}`);
    if (exchanged.status === 400 || exchanged.status === 403) {
      throw new NotAuthenticated(`Vault refused the OIDC callback (${vaultMessage(exchanged)})`, "run 'keybroker login' again");
    }
    if (exchanged.status !== 200) throw options.fail(exchanged, 'OIDC callback');
    return { token: answerOf(LoginAuth, exchanged.body?.auth, 'the OIDC callback', `Vault at ${options.address}`).client_token };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

/** The provider's sign-in URL from Vault's auth_url answer; an empty one means the redirect is not allowed. */
function authUrlOf(started: VaultResponse, redirectUri: string, options: OidcLoginOptions): string {
  if (started.status === 400) {
    throw new ConfigError(
      `Vault refused to start the OIDC login (${vaultMessage(started)})`,
      `check the role, and that ${redirectUri} is in its allowed_redirect_uris`,
    );
  }
  if (started.status !== 200) throw options.fail(started, 'OIDC auth_url');
  const authUrl = answerOf(OidcAuthUrl, started.body?.data ?? {}, 'OIDC auth_url', `Vault at ${options.address}`).auth_url;
  if (!authUrl) {
    throw new ConfigError(
      `Vault returned no OIDC auth URL for ${redirectUri}`,
      `ask your Vault admin to allow ${redirectUri} in the OIDC role's allowed_redirect_uris`,
    );
  }
  return authUrl;
}

/** A server on 127.0.0.1:port whose `callback` is the query of the first request to /oidc/callback with the expected state; others get 400. */
async function listenForCallback(
  port: number,
  isExpected: (state: string | null) => boolean,
): Promise<{ server: http.Server; callback: Promise<URLSearchParams> }> {
  const server = http.createServer();
  const callback = new Promise<URLSearchParams>((resolve) => {
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname !== '/oidc/callback') {
        res.writeHead(404).end();
        return;
      }
      if (!isExpected(url.searchParams.get('state'))) {
        res
          .writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' })
          .end('keybroker: this answer is not for the login in progress (wrong state); it was ignored.\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', Connection: 'close' });
      res.end('<!doctype html><title>Vault login</title><p>Signed in to Vault. You can close this window and go back to the terminal.</p>');
      resolve(url.searchParams);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new UsageError(
              `port ${port} on 127.0.0.1 is in use, so the OIDC callback cannot be received`,
              'close what holds it (another vault login?), or set "callbackPort" in the store\'s auth',
            )
          : error,
      ),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
  return { server, callback };
}
