// The developer's Vault token for one run: what `vault login` left (VAULT_TOKEN, ~/.vault-token) or
// a login of the profile's method; checked (and renewed) with lookup-self; and who it names.
import fs from 'node:fs';
import os from 'node:os';
import * as v from 'valibot';
import { AccessDenied, KeybrokerError, NotAuthenticated } from '../../src/kernel/errors.ts';
import { answerOf, LoginAuth, TokenInfo } from './answers.ts';
import { deadline, send, unexpected, vaultMessage, type Call, type Session, type Vault } from './connection.ts';

/** A token is renewed once less than this share of its TTL is left, as Vault's own LifetimeWatcher does (at ~2/3). */
const RENEW_WHEN_LEFT = 1 / 3;
/** Auto-created entities are named like this; such a name says nothing about the developer. */
const GENERATED_ENTITY_NAME = /^entity_[0-9a-f]{8}$/;
/** `vault login -method=oidc` listens here unless given port=…. */
const VAULT_CLI_OIDC_PORT = 8250;

export const oidcPort = ({ auth }: Vault): number => (auth.method === 'oidc' && auth.callbackPort) || VAULT_CLI_OIDC_PORT;

/** The vault CLI command that logs the developer in as the profile's method does. */
export function loginCommand(vault: Vault): string {
  const { store, env, auth, authMount } = vault;
  const flags = [
    ...(store.address && store.address !== env['VAULT_ADDR'] ? [`-address=${vault.address}`] : []),
    ...(store.namespace && store.namespace !== env['VAULT_NAMESPACE'] ? [`-namespace=${vault.namespace}`] : []),
  ];
  const pathFlag = 'mount' in auth && auth.mount ? [`-path=${auth.mount}`] : [];
  switch (auth.method) {
    case 'token':
      return ['vault login', ...flags].join(' ');
    case 'oidc':
      // The vault CLI's callback port must match the role's allowed_redirect_uris, as keybroker's does.
      return [
        'vault login',
        ...flags,
        '-method=oidc',
        ...pathFlag,
        ...(auth.role ? [`role=${auth.role}`] : []),
        ...(oidcPort(vault) !== VAULT_CLI_OIDC_PORT ? [`port=${oidcPort(vault)}`] : []),
      ].join(' ');
    case 'userpass':
    case 'ldap':
      return ['vault login', ...flags, `-method=${auth.method}`, ...pathFlag, `username=${auth.username ?? osUser()}`].join(' ');
    case 'approle':
      return ['vault write', ...flags, `auth/${authMount}/login`, `role_id=${auth.roleId}`, 'secret_id=-'].join(' ');
    case 'jwt':
      return [
        'vault write',
        ...flags,
        `auth/${authMount}/login`,
        `role=${auth.role}`,
        auth.jwtFile ? `jwt=@${auth.jwtFile}` : `jwt=$${auth.jwtEnv}`,
      ].join(' ');
  }
}

export const loginFix = (vault: Vault): string => `run '${loginCommand(vault)}'`;

function osUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '<your user name>';
  }
}

/** The token of this run, opened once. */
export function currentSession(vault: Vault, call: Call): Promise<Session> {
  vault.session ??= openSession(vault, call);
  return vault.session;
}

/** A login when the profile's method has its credentials here; otherwise what `vault login` left. */
async function openSession(vault: Vault, call: Call): Promise<Session> {
  const { auth, authMount } = vault;
  switch (auth.method) {
    case 'approle':
      return login(vault, call, `auth/${authMount}/login`, {
        role_id: auth.roleId,
        secret_id: secretFrom(vault, auth.secretIdFile, auth.secretIdEnv, 'secret_id'),
      });
    case 'jwt':
      return login(vault, call, `auth/${authMount}/login`, { role: auth.role, jwt: secretFrom(vault, auth.jwtFile, auth.jwtEnv, 'JWT') });
    case 'userpass':
    case 'ldap':
      if (auth.passwordFile) {
        const username = auth.username ?? osUser();
        return login(vault, call, `auth/${authMount}/login/${encodeURIComponent(username)}`, {
          password: secretFrom(vault, auth.passwordFile, undefined, 'password'),
        });
      }
      return storedToken(vault);
    default:
      return storedToken(vault);
  }
}

/** What `vault login` left: VAULT_TOKEN first, then ~/.vault-token (the CLI's default token helper). */
export function storedToken(vault: Vault): Session {
  const fromEnv = vault.env['VAULT_TOKEN']?.trim();
  if (fromEnv) return { token: fromEnv, source: 'VAULT_TOKEN', fresh: false };
  let fromFile = '';
  try {
    fromFile = fs.readFileSync(vault.tokenFile, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new NotAuthenticated(
        `cannot read ${vault.tokenFile} (${(error as NodeJS.ErrnoException).code})`,
        `fix its permissions, or ${loginFix(vault)}`,
      );
    }
  }
  if (fromFile) return { token: fromFile, source: '~/.vault-token', fresh: false };
  throw new NotAuthenticated(`not logged in to ${vault.where}: no token in VAULT_TOKEN or ~/.vault-token`, loginFix(vault));
}

/** A login credential from the variable the profile names, else from its file. */
function secretFrom(vault: Vault, file: string | undefined, variable: string | undefined, what: string): string {
  const method = vault.auth.method;
  if (variable) {
    const value = vault.env[variable]?.trim();
    if (value) return value;
    if (!file) throw new NotAuthenticated(`no Vault ${method} ${what}: ${variable} is not set`, `set ${variable}, or ${loginFix(vault)}`);
  }
  try {
    return fs.readFileSync(file!, 'utf8').trim();
  } catch (error) {
    throw new NotAuthenticated(
      `cannot read the Vault ${method} ${what} from ${file} (${(error as NodeJS.ErrnoException).code})`,
      `check the file the profile names, or ${loginFix(vault)}`,
    );
  }
}

async function login(vault: Vault, call: Call, loginPath: string, body: Record<string, string>): Promise<Session> {
  const { auth, authMount, where } = vault;
  const response = await send(vault, { ...call, what: `${auth.method} login` }, 'POST', loginPath, { body });
  if (response.status === 200) {
    const { client_token: token } = answerOf(LoginAuth, response.body?.auth, `the ${auth.method} login`, where);
    return { token, source: `${auth.method} login at auth/${authMount}`, fresh: true };
  }
  if (response.status === 400 || response.status === 403 || response.status === 401) {
    const fixes: Record<string, string> = {
      approle: 'check the AppRole role_id and secret_id (a secret_id may have expired or run out of uses)',
      jwt: `check the JWT (audience, expiry, bound claims) against the Vault role "${auth.method === 'jwt' ? auth.role : ''}"`,
      userpass: `check the password file, or ${loginFix(vault)}`,
      ldap: `check the password file, or ${loginFix(vault)}`,
    };
    throw new NotAuthenticated(
      `${where} refused the ${auth.method} login at auth/${authMount} (${vaultMessage(response)})`,
      fixes[auth.method] ?? loginFix(vault),
    );
  }
  throw unexpected(vault, response, call, `auth/${authMount}`, loginFix(vault));
}

/** lookup-self, once per run; renews the token when it is renewable and near its end. */
export function tokenInfo(vault: Vault, call: Call): Promise<TokenInfo> {
  vault.lookup ??= (async () => {
    const { token, source } = await currentSession(vault, call);
    const response = await send(vault, { ...call, what: 'token lookup-self' }, 'GET', 'auth/token/lookup-self', { token });
    if (response.status === 403 || response.status === 401) {
      throw new NotAuthenticated(`${vault.where} rejected the token from ${source} (expired or revoked)`, loginFix(vault));
    }
    if (response.status !== 200) throw unexpected(vault, response, call, 'your token', loginFix(vault));
    const info = answerOf(TokenInfo, response.body?.data ?? {}, 'token lookup-self', vault.where);
    if (renewalDue(info)) {
      const renewed = await send(vault, { ...call, what: 'token renew-self' }, 'POST', 'auth/token/renew-self', { token, body: {} }).catch(
        (error: unknown) => error,
      );
      // Best effort: the token still works now; the next run tries again.
      vault.context.debug(
        `vault: renew-self of the token from ${source}: ${renewed && typeof renewed === 'object' && 'status' in renewed ? `HTTP ${renewed.status}` : String(renewed)}`,
      );
    }
    return info;
  })();
  return vault.lookup;
}

/** A renewable token with less than a third of its TTL left. */
export function renewalDue(info: Pick<TokenInfo, 'renewable' | 'ttl' | 'creation_ttl'>): boolean {
  const ttl = info.ttl ?? 0;
  const full = info.creation_ttl ?? 0;
  return Boolean(info.renewable) && ttl > 0 && full > 0 && ttl < full * RENEW_WHEN_LEFT;
}

/** A 403 means a bad token or a policy that denies: lookup-self tells which. */
export async function denied(vault: Vault, call: Call, subject: string, capability: string, policyPath: string): Promise<KeybrokerError> {
  const current = await currentSession(vault, call);
  // A token just issued by a login is valid: only one from outside may have expired.
  if (!current.fresh) {
    try {
      await tokenInfo(vault, call);
    } catch (error) {
      if (error instanceof KeybrokerError) return error;
      throw error;
    }
  }
  return new AccessDenied(
    `access denied to ${subject} in ${vault.where} (no "${capability}" on ${policyPath})`,
    `ask your Vault admin for a policy granting "${capability}" on ${policyPath} (keybroker admin policy prints one)`,
  );
}

/** The token for a request; one that came from outside is checked (and renewed) alongside it. */
export async function token(vault: Vault, call: Call): Promise<string> {
  const current = await currentSession(vault, call);
  if (!current.fresh) tokenInfo(vault, call).catch(() => {});
  return current.token;
}

/** Waits for the background lookup-self (and renewal) so it is not cut off when the run ends. */
export async function settle(vault: Vault): Promise<void> {
  await vault.lookup?.catch(() => {});
}

/** The name a fresh token carries, for the login message (the OIDC response's metadata has only the role). */
export async function loggedInAs(vault: Vault, tokenValue: string): Promise<string> {
  const response = await send(vault, deadline(vault, 'token lookup-self'), 'GET', 'auth/token/lookup-self', { token: tokenValue }).catch(
    () => undefined,
  );
  // Only for a message: an answer not understood names nobody.
  const parsed = response?.status === 200 ? v.safeParse(TokenInfo, response.body?.data) : undefined;
  const info = parsed?.success ? parsed.output : undefined;
  return (info && (userFromToken(info) || info.display_name)) || 'your OIDC identity';
}

/** `{user}`: an entity name an admin gave, else the name the auth method recorded, else the alias in the display name. */
export function userFromToken(info: TokenInfo, entityName?: string | null): string {
  if (entityName && !GENERATED_ENTITY_NAME.test(entityName)) return entityName;
  // userpass/ldap record the username; approle the role's name (a CI job's identity).
  const username = info.meta?.['username'] ?? info.meta?.['user'] ?? info.meta?.['role_name'];
  if (username) return username;
  const display = info.display_name ?? '';
  // Vault prefixes the alias with the auth mount ("oidc-alice@corp.com", "userpass-alice").
  const mountPrefix = /^auth\/(.+?)\/(login|oidc|callback)/.exec(info.path ?? '')?.[1]?.replaceAll('/', '-');
  if (mountPrefix && display.startsWith(`${mountPrefix}-`)) return display.slice(mountPrefix.length + 1);
  return display === 'token' || display === 'root' ? '' : display.replace(/^token-/, '');
}
