// A protocol-faithful fake of Azure Key Vault's secrets API and of the Entra ID token endpoint,
// written from the REST reference (learn.microsoft.com/rest/api/keyvault/secrets) and the
// challenge-based auth of the Key Vault SDKs. HTTPS with a test CA (tls.ts).
// It rejects what the service rejects: no token (401 + WWW-Authenticate challenge), a bad
// signature, another tenant's or another audience's token, an expired token, a missing or
// unknown api-version, invalid names, callers without a role on the secret (RBAC, scoped to
// the vault or to one secret), disabled secrets (403 SecretDisabled), deleted names (409).
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { makeTestCertificates } from './tls.ts';
import type { AddressInfo } from 'node:net';

export const KEY_VAULT_RESOURCE = 'https://vault.azure.net';
/** The versions the service accepts (the SDK sends its latest, 2025-07-01). */
const API_VERSIONS = new Set(['2016-10-01', '7.0', '7.1', '7.2', '7.3', '7.4', '7.5', '7.6', '2025-07-01']);
const NAME = /^[0-9a-zA-Z-]{1,127}$/;

/** Azure's built-in roles for secrets (data plane). */
type SecretsRole = 'Key Vault Secrets User' | 'Key Vault Secrets Officer';
const ROLE_ACTIONS: Record<SecretsRole, Set<string>> = {
  'Key Vault Secrets User': new Set(['getSecret']),
  'Key Vault Secrets Officer': new Set([
    'getSecret',
    'setSecret',
    'listSecrets',
    'updateSecret',
    'deleteSecret',
    'purgeSecret',
    'recoverSecret',
    'listDeletedSecrets',
    'getDeletedSecret',
  ]),
};

interface TokenClaims {
  tid: string;
  oid: string;
  upn?: string;
  appid?: string;
  aud?: string;
  /** Seconds since the epoch. */
  exp?: number;
}

interface Version {
  id: string;
  value: string;
  enabled: boolean;
  created: number;
  updated: number;
  exp?: number;
  nbf?: number;
  contentType?: string;
  tags: Record<string, string>;
}
interface Secret {
  name: string;
  versions: Version[];
}
interface Deleted {
  secret: Secret;
  deletedDate: number;
}

export interface KeyVaultFake {
  port: number;
  tenant: string;
  /** PEM file of the test CA that signed the server's certificate. */
  caFile: string;
  ca: string;
  /** https://127.0.0.1:port */
  url(port?: number): string;
  /** An access token as Entra ID would issue it for Key Vault (HS256 with the fake's key). */
  mintToken(claims: TokenClaims): string;
  assignRole(oid: string, role: SecretsRole, scope: '/' | `/secrets/${string}`): void;
  /** A confidential client (service principal) that may use the client-credentials grant. */
  registerApp(app: { clientId: string; secret: string; oid: string }): void;
  /** Requests seen, for tests that check what the client sent. */
  requests: { method: string; path: string; authorized: boolean }[];
  /**
   * The next `count` authenticated reads of a secret (GET /secrets/{name}) are throttled as the
   * service does past its limits: 429 with Retry-After (seconds) and a "Throttled" error.
   */
  throttleReads(count: number, retryAfterSeconds?: number): void;
  /** Reads answered 429 so far. */
  throttledReads(): number;
  /** Server-side admin write (like the portal): a new version. */
  setSecret(name: string, value: string, attributes?: { exp?: number; enabled?: boolean }): string;
  stop(): Promise<void>;
}

export interface KeyVaultFakeOptions {
  tenant: string;
  /** Items per list page when the client asks for none (the service's default is 25). */
  pageSize?: number;
}

export async function startKeyVaultFake(options: KeyVaultFakeOptions): Promise<KeyVaultFake> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-azure-'));
  const tls = makeTestCertificates(dir);
  const signingKey = randomBytes(32);
  const secrets = new Map<string, Secret>();
  const deleted = new Map<string, Deleted>();
  const roles: { oid: string; role: SecretsRole; scope: string }[] = [];
  const apps = new Map<string, { secret: string; oid: string }>();
  const requests: KeyVaultFake['requests'] = [];
  const pageSize = options.pageSize ?? 25;
  let base = '';
  const throttle = { left: 0, retryAfterSeconds: 1, given: 0 };

  const now = () => Math.floor(Date.now() / 1000);
  const mintToken = (claims: TokenClaims): string => {
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid: 'fake' }));
    const iat = now();
    const body = b64url(
      JSON.stringify({ aud: KEY_VAULT_RESOURCE, iss: `https://sts.windows.net/${claims.tid}/`, iat, nbf: iat, exp: iat + 3600, ...claims }),
    );
    const signature = createHmac('sha256', signingKey).update(`${header}.${body}`).digest('base64url');
    return `${header}.${body}.${signature}`;
  };
  const key = (name: string) => name.toLowerCase(); // object names are case-insensitive

  const setSecret = (
    name: string,
    value: string,
    attributes: { exp?: number; nbf?: number; enabled?: boolean } = {},
    tags: Record<string, string> = {},
    contentType?: string,
  ) => {
    let secret = secrets.get(key(name));
    if (!secret) secrets.set(key(name), (secret = { name, versions: [] }));
    const at = now();
    const version: Version = {
      id: randomUUID().replace(/-/g, ''),
      value,
      enabled: attributes.enabled ?? true,
      created: at,
      updated: at,
      tags,
    };
    if (attributes.exp !== undefined) version.exp = attributes.exp;
    if (attributes.nbf !== undefined) version.nbf = attributes.nbf;
    if (contentType !== undefined) version.contentType = contentType;
    secret.versions.push(version);
    return version.id;
  };

  const attributesOf = (version: Version) => ({
    enabled: version.enabled,
    created: version.created,
    updated: version.updated,
    ...(version.exp !== undefined ? { exp: version.exp } : {}),
    ...(version.nbf !== undefined ? { nbf: version.nbf } : {}),
    recoveryLevel: 'Recoverable+Purgeable',
    recoverableDays: 90,
  });
  const item = (secret: Secret, version: Version, withVersion: boolean) => ({
    id: `${base}/secrets/${secret.name}${withVersion ? `/${version.id}` : ''}`,
    attributes: attributesOf(version),
    tags: version.tags,
    ...(version.contentType ? { contentType: version.contentType } : {}),
  });
  const bundle = (secret: Secret, version: Version) => ({ value: version.value, ...item(secret, version, true) });
  const deletedBundle = (entry: Deleted) => {
    const latest = entry.secret.versions.at(-1)!;
    return {
      ...item(entry.secret, latest, true),
      recoveryId: `${base}/deletedsecrets/${entry.secret.name}`,
      deletedDate: entry.deletedDate,
      scheduledPurgeDate: entry.deletedDate + 90 * 86400,
    };
  };

  /** Authenticates the bearer token; the caller's oid, or undefined after answering 401. */
  function authenticate(request: IncomingMessage, response: ServerResponse): TokenClaims | undefined {
    const challenge = `Bearer authorization="https://login.microsoftonline.com/${options.tenant}", resource="${KEY_VAULT_RESOURCE}"`;
    const deny = (message: string) => {
      response.setHeader('WWW-Authenticate', challenge);
      send(response, 401, { error: { code: 'Unauthorized', message } });
      return undefined;
    };
    const header = request.headers.authorization;
    if (!header || !/^Bearer\s+\S+$/i.test(header)) return deny('AKV10000: Request is missing a Bearer or PoP token.');
    const token = header.replace(/^Bearer\s+/i, '');
    const [head, body, signature] = token.split('.');
    if (!head || !body || !signature) return deny('AKV10000: Request is missing a Bearer or PoP token.');
    const expected = createHmac('sha256', signingKey).update(`${head}.${body}`).digest('base64url');
    if (expected !== signature) return deny('AKV10000: Token validation failed: the signature is invalid.');
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as TokenClaims & { iss: string; exp: number };
    if (claims.aud !== KEY_VAULT_RESOURCE && claims.aud !== `${KEY_VAULT_RESOURCE}/`)
      return deny(`AKV10022: Invalid audience. Expected ${KEY_VAULT_RESOURCE}, found: ${claims.aud}.`);
    if (claims.tid !== options.tenant) {
      return deny(`AKV10032: Invalid issuer. Expected one of https://sts.windows.net/${options.tenant}/, found ${claims.iss}.`);
    }
    if (claims.exp < now()) return deny('AKV10000: Token validation failed: the token is expired.');
    return claims;
  }

  function authorize(caller: TokenClaims, action: string, name: string | undefined, response: ServerResponse): boolean {
    const allowed = roles.some(
      (assignment) =>
        assignment.oid === caller.oid &&
        ROLE_ACTIONS[assignment.role].has(action) &&
        (assignment.scope === '/' || (name !== undefined && key(assignment.scope) === key(`/secrets/${name}`))),
    );
    if (allowed) return true;
    send(response, 403, {
      error: {
        code: 'Forbidden',
        message:
          `Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n` +
          `Caller: ${caller.appid ? `appid=${caller.appid};` : ''}oid=${caller.oid};iss=https://sts.windows.net/${caller.tid}/\r\n` +
          `Action: 'Microsoft.KeyVault/vaults/secrets/${action}/action'\r\nResource: '${name ? `/secrets/${name.toLowerCase()}` : '/'}'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC'\r\n`,
        innererror: { code: 'ForbiddenByRbac' },
      },
    });
    return false;
  }

  const notFound = (response: ServerResponse, name: string, kind = 'secret') =>
    send(response, 404, {
      error: {
        code: kind === 'secret' ? 'SecretNotFound' : 'SecretNotFound',
        message: `A ${kind} with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
      },
    });

  function page<T>(url: URL, all: T[]): { value: T[]; nextLink: string | null } {
    const max = Math.min(Number(url.searchParams.get('maxresults') ?? pageSize) || pageSize, 25);
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0') || 0;
    const value = all.slice(skip, skip + max);
    let nextLink: string | null = null;
    if (skip + max < all.length) {
      const next = new URL(`${base}${url.pathname}`);
      next.searchParams.set('api-version', url.searchParams.get('api-version')!);
      next.searchParams.set('$skiptoken', String(skip + max));
      if (url.searchParams.has('maxresults')) next.searchParams.set('maxresults', String(max));
      nextLink = next.toString();
    }
    return { value, nextLink };
  }

  async function handleVault(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const apiVersion = url.searchParams.get('api-version');
    const caller = authenticate(request, response);
    requests.push({ method: request.method ?? '', path: url.pathname, authorized: caller !== undefined });
    if (!caller) return;
    if (throttle.left > 0 && request.method === 'GET' && /^\/secrets\/[^/]+\/?$/.test(url.pathname)) {
      throttle.left -= 1;
      throttle.given += 1;
      response.setHeader('Retry-After', String(throttle.retryAfterSeconds));
      return send(response, 429, {
        error: {
          code: 'Throttled',
          message:
            'Request was not processed because too many requests were received. Reason: A generic reason. Please see https://go.microsoft.com/fwlink/?linkid=2147740 for more details.',
        },
      });
    }
    if (!apiVersion)
      return send(response, 400, {
        error: { code: 'BadParameter', message: 'The request URI contains an invalid API version: missing api-version query parameter' },
      });
    if (!API_VERSIONS.has(apiVersion))
      return send(response, 400, {
        error: {
          code: 'BadParameter',
          message: `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
        },
      });
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = request.method ?? 'GET';
    const body = ['PUT', 'PATCH', 'POST'].includes(method) ? await readJson(request) : undefined;
    if (body === null) return send(response, 400, { error: { code: 'BadParameter', message: 'The request body is not valid JSON.' } });
    const [collection, name, third] = parts;
    if (name !== undefined && !NAME.test(name))
      return send(response, 400, { error: { code: 'BadParameter', message: `The request URI contains an invalid name: ${name}` } });

    if (collection === 'secrets' && name === undefined && method === 'GET') {
      if (!authorize(caller, 'listSecrets', undefined, response)) return;
      const all = [...secrets.values()]
        .filter((secret) => secret.versions.length)
        .map((secret) => item(secret, secret.versions.at(-1)!, false));
      return send(response, 200, page(url, all));
    }
    if (collection === 'secrets' && name !== undefined) {
      const secret = secrets.get(key(name));
      if (method === 'PUT' && third === undefined) {
        if (!authorize(caller, 'setSecret', name, response)) return;
        if (deleted.has(key(name))) {
          return send(response, 409, {
            error: {
              code: 'Conflict',
              message: `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
            },
          });
        }
        const input = body as {
          value?: unknown;
          tags?: Record<string, string>;
          contentType?: string;
          attributes?: { enabled?: boolean; exp?: number; nbf?: number };
        };
        if (typeof input.value !== 'string')
          return send(response, 400, { error: { code: 'BadParameter', message: 'Property value is required.' } });
        const attributes: { exp?: number; nbf?: number; enabled?: boolean } = {};
        if (input.attributes?.enabled !== undefined) attributes.enabled = input.attributes.enabled;
        if (input.attributes?.exp !== undefined) attributes.exp = input.attributes.exp;
        if (input.attributes?.nbf !== undefined) attributes.nbf = input.attributes.nbf;
        setSecret(name, input.value, attributes, input.tags ?? {}, input.contentType);
        const stored = secrets.get(key(name))!;
        return send(response, 200, bundle(stored, stored.versions.at(-1)!));
      }
      if (method === 'GET' && third === 'versions') {
        if (!authorize(caller, 'listSecrets', name, response)) return;
        if (!secret) return notFound(response, name);
        return send(
          response,
          200,
          page(
            url,
            secret.versions.map((version) => item(secret, version, true)),
          ),
        );
      }
      if (method === 'GET') {
        if (!authorize(caller, 'getSecret', name, response)) return;
        if (!secret) return notFound(response, name);
        const version = third ? secret.versions.find((candidate) => candidate.id === third) : secret.versions.at(-1);
        if (!version) return notFound(response, `${name}/${third}`);
        if (!version.enabled) {
          return send(response, 403, {
            error: {
              code: 'Forbidden',
              message: 'Operation get is not allowed on a disabled secret.',
              innererror: { code: 'SecretDisabled' },
            },
          });
        }
        return send(response, 200, bundle(secret, version));
      }
      if (method === 'PATCH') {
        if (!authorize(caller, 'updateSecret', name, response)) return;
        if (!secret) return notFound(response, name);
        const version = third ? secret.versions.find((candidate) => candidate.id === third) : secret.versions.at(-1);
        if (!version) return notFound(response, `${name}/${third}`);
        const input = body as {
          tags?: Record<string, string>;
          contentType?: string;
          attributes?: { enabled?: boolean; exp?: number; nbf?: number };
        };
        if (input.attributes?.enabled !== undefined) version.enabled = input.attributes.enabled;
        if (input.attributes?.exp !== undefined) version.exp = input.attributes.exp;
        if (input.attributes?.nbf !== undefined) version.nbf = input.attributes.nbf;
        if (input.tags) version.tags = input.tags;
        if (input.contentType !== undefined) version.contentType = input.contentType;
        version.updated = now();
        return send(response, 200, item(secret, version, true));
      }
      if (method === 'DELETE' && third === undefined) {
        if (!authorize(caller, 'deleteSecret', name, response)) return;
        if (!secret) return notFound(response, name);
        secrets.delete(key(name));
        const entry = { secret, deletedDate: now() };
        deleted.set(key(name), entry);
        return send(response, 200, deletedBundle(entry));
      }
    }
    if (collection === 'deletedsecrets') {
      if (name === undefined && method === 'GET') {
        if (!authorize(caller, 'listDeletedSecrets', undefined, response)) return;
        const all = [...deleted.values()].map((entry) => {
          const { recoveryId, deletedDate, scheduledPurgeDate, id, attributes, tags } = deletedBundle(entry);
          return { id: id.replace(/\/[^/]+$/, ''), recoveryId, deletedDate, scheduledPurgeDate, attributes, tags };
        });
        return send(response, 200, page(url, all));
      }
      if (name !== undefined) {
        const entry = deleted.get(key(name));
        if (method === 'GET') {
          if (!authorize(caller, 'getDeletedSecret', name, response)) return;
          if (!entry) return notFound(response, name, 'deleted secret');
          return send(response, 200, deletedBundle(entry));
        }
        if (method === 'DELETE') {
          if (!authorize(caller, 'purgeSecret', name, response)) return;
          if (!entry) return notFound(response, name, 'deleted secret');
          deleted.delete(key(name));
          response.writeHead(204).end();
          return;
        }
        if (method === 'POST' && third === 'recover') {
          if (!authorize(caller, 'recoverSecret', name, response)) return;
          if (!entry) return notFound(response, name, 'deleted secret');
          deleted.delete(key(name));
          secrets.set(key(name), entry.secret);
          return send(response, 200, bundle(entry.secret, entry.secret.versions.at(-1)!));
        }
      }
    }
    send(response, 405, {
      error: { code: 'BadParameter', message: `The requested operation ${method} ${url.pathname} is not supported.` },
    });
  }

  /** Entra ID v2.0 endpoints under /{tenant}/: discovery and the client-credentials grant. */
  async function handleEntra(request: IncomingMessage, response: ServerResponse, url: URL): Promise<boolean> {
    const match = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(url.pathname);
    if (!match) return false;
    const tenant = decodeURIComponent(match[1]!);
    if (tenant !== options.tenant) {
      send(response, 400, {
        error: 'invalid_tenant',
        error_description: `AADSTS90002: Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
        error_codes: [90002],
      });
      return true;
    }
    if (match[2]!.startsWith('v2.0')) {
      const authority = `${base}/${tenant}`;
      send(response, 200, {
        token_endpoint: `${authority}/oauth2/v2.0/token`,
        authorization_endpoint: `${authority}/oauth2/v2.0/authorize`,
        device_authorization_endpoint: `${authority}/oauth2/v2.0/devicecode`,
        end_session_endpoint: `${authority}/oauth2/v2.0/logout`,
        issuer: `${authority}/v2.0`,
        jwks_uri: `${authority}/discovery/v2.0/keys`,
        response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
        token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
        tenant_region_scope: 'NA',
      });
      return true;
    }
    const form = new URLSearchParams(await readText(request));
    const fail = (status: number, error: string, description: string) => send(response, status, { error, error_description: description });
    if (form.get('grant_type') !== 'client_credentials') {
      fail(400, 'unsupported_grant_type', `AADSTS70003: The app requested an unsupported grant type '${form.get('grant_type')}'.`);
      return true;
    }
    const app = apps.get(form.get('client_id') ?? '');
    if (!app) {
      fail(
        400,
        'unauthorized_client',
        `AADSTS700016: Application with identifier '${form.get('client_id')}' was not found in the directory '${tenant}'.`,
      );
      return true;
    }
    if (form.get('client_secret') !== app.secret) {
      fail(
        401,
        'invalid_client',
        `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${form.get('client_id')}'.`,
      );
      return true;
    }
    const scope = form.get('scope') ?? '';
    if (!scope.split(' ').some((entry) => entry === `${KEY_VAULT_RESOURCE}/.default`)) {
      fail(
        400,
        'invalid_scope',
        `AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
      );
      return true;
    }
    send(response, 200, {
      token_type: 'Bearer',
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: mintToken({ tid: tenant, oid: app.oid, appid: form.get('client_id')! }),
    });
    return true;
  }

  const server = https.createServer({ key: tls.key, cert: tls.cert }, (request, response) => {
    const url = new URL(request.url ?? '/', 'https://127.0.0.1');
    void (async () => {
      if (await handleEntra(request, response, url)) return;
      await handleVault(request, response, url);
    })().catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, { error: { code: 'InternalServerError', message: String(error) } });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  base = `https://127.0.0.1:${port}`;

  return {
    port,
    tenant: options.tenant,
    caFile: tls.caFile,
    ca: tls.ca,
    url: (at = port) => `https://127.0.0.1:${at}`,
    mintToken,
    assignRole: (oid, role, scope) => roles.push({ oid, role, scope }),
    registerApp: (app) => apps.set(app.clientId, { secret: app.secret, oid: app.oid }),
    requests,
    setSecret: (name, value, attributes) => setSecret(name, value, attributes ?? {}),
    throttleReads(count, retryAfterSeconds = 1) {
      throttle.left = count;
      throttle.retryAfterSeconds = retryAfterSeconds;
    },
    throttledReads: () => throttle.given,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          fs.rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'x-ms-keyvault-service-version': '1.9.0.0',
  });
  response.end(text);
}

function readText(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (text += chunk));
    request.on('end', () => resolve(text));
    request.on('error', reject);
  });
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const text = await readText(request);
  if (!text) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
