// A protocol-faithful fake of HashiCorp Vault's HTTP API, written from Vault's API docs: health,
// token lookup-self/renew-self, KV v1 and KV v2 (data, metadata, delete/undelete/destroy,
// check-and-set, LIST as GET ?list=true), ACL policies, namespaces, the login endpoints of
// approle/userpass/ldap/jwt/oidc and Vault's error JSON. It rejects what Vault rejects: no or
// a wrong token, a token of another namespace, a path the policy does not grant, a stale
// check-and-set, a bad login, an unsigned or expired JWT, an OIDC redirect_uri not allowed.
import { createHash, createPublicKey, randomBytes, randomUUID, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

type Capability = 'create' | 'read' | 'update' | 'delete' | 'list' | 'sudo' | 'deny';
/** A policy as Vault's HCL has it: path pattern (glob `*` at the end, `+` for one segment) → capabilities. */
type Policy = Record<string, Capability[]>;

interface Identity {
  /** The alias name the auth method saw ("alice"). */
  alias: string;
  /** The entity's name; Vault generates "entity_<8 hex>" unless an admin names it. */
  entityName?: string;
  policies: string[];
  meta?: Record<string, string>;
}

interface Token {
  id: string;
  accessor: string;
  namespace: string;
  policies: string[];
  displayName: string;
  entityId: string;
  path: string;
  meta: Record<string, string> | null;
  creationTtl: number;
  expiresAt: number | undefined;
  renewable: boolean;
  issuedAt: number;
}

interface KvVersion {
  data: Record<string, unknown> | null;
  createdTime: string;
  deletionTime: string;
  destroyed: boolean;
}

interface KvSecret {
  versions: KvVersion[];
  customMetadata: Record<string, string> | null;
  casRequired: boolean;
  createdTime: string;
  updatedTime: string;
}

interface Mount {
  version: 1 | 2;
  v1: Map<string, Record<string, unknown>>;
  v2: Map<string, KvSecret>;
}

interface Namespace {
  mounts: Map<string, Mount>;
  policies: Map<string, Policy>;
  userpass: Map<string, { password: string } & Identity>;
  ldap: Map<string, { password: string } & Identity>;
  approle: Map<string, { roleId: string; secretIds: Set<string> } & Identity>;
  jwt: { publicKey?: KeyObject; roles: Map<string, { boundAudiences: string[]; userClaim: string; policies: string[] }> };
  oidc: { roles: Map<string, { allowedRedirectUris: string[]; identity: Identity }>; defaultRole?: string };
}

interface RequestRecord {
  method: string;
  path: string;
  namespace: string;
  token: boolean;
  status: number;
}

export interface FakeVault {
  port: number;
  address: string;
  rootToken: string;
  requests: RequestRecord[];
  addNamespace(name: string): void;
  mountKv(path: string, version: 1 | 2, namespace?: string): void;
  setPolicy(name: string, policy: Policy, namespace?: string): void;
  /** As `vault token create`: a token for `identity` (an entity is created as Vault does on first login). */
  createToken(
    identity: Identity & { ttlSeconds?: number; renewable?: boolean; authPath?: string; namespace?: string; remainingSeconds?: number },
  ): string;
  revokeToken(token: string): void;
  /** lookup-self as the server sees the token now (for tests of renewal). */
  tokenState(token: string): { ttl: number; renewCount: number } | undefined;
  addUserpass(
    username: string,
    password: string,
    identity: Omit<Identity, 'alias'>,
    method?: 'userpass' | 'ldap',
    namespace?: string,
  ): void;
  addApprole(roleName: string, identity: Omit<Identity, 'alias'>, namespace?: string): { roleId: string; secretId: string };
  configureJwt(
    publicKeyPem: string,
    roles: Record<string, { boundAudiences: string[]; userClaim: string; policies: string[] }>,
    namespace?: string,
  ): void;
  addOidcRole(role: string, allowedRedirectUris: string[], identity: Identity, namespace?: string): void;
  /** The next `count` requests answer `status` with Vault's error JSON (a standby in trouble, a proxy). */
  failNext(count: number, status: number): void;
  /**
   * The next `count` requests under `/v1/<pathPrefix>` answer as a rate limit quota does when it is
   * exceeded (with enable_rate_limit_response_headers): 429, Retry-After in seconds, X-RateLimit-*.
   */
  throttle(count: number, options?: { pathPrefix?: string; retryAfterSeconds?: number }): void;
  /** Requests answered 429 so far. */
  throttled(): number;
  /** Makes every KV request answer 503 "Vault is sealed" until unsealed. */
  setSealed(sealed: boolean): void;
  /** As an admin's `vault kv put <mount>/<name> field=value…` (root token, through the HTTP API); throws unless it was stored. */
  kvPut(name: string, data: Record<string, unknown>, options?: { mount?: string; namespace?: string }): Promise<void>;
  stop(): Promise<void>;
}

const PERMISSION_DENIED = '1 error occurred:\n\t* permission denied\n\n';

export interface FakeVaultOptions {
  /** Serve HTTPS with this certificate (PEM), as every production Vault does. */
  tls?: { key: string; cert: string };
}

export async function startFakeVault(options: FakeVaultOptions = {}): Promise<FakeVault> {
  const namespaces = new Map<string, Namespace>();
  const tokens = new Map<string, Token>();
  const renewals = new Map<string, number>();
  const entities = new Map<string, { id: string; name: string; namespace: string }>();
  const oidcPending = new Map<
    string,
    { code: string; nonce: string; clientNonce: string; redirectUri: string; role: string; namespace: string }
  >();
  const requests: RequestRecord[] = [];
  let sealed = false;
  let failures = { count: 0, status: 500 };
  const quota = { left: 0, given: 0, pathPrefix: '', retryAfterSeconds: 1 };

  const newNamespace = (): Namespace => ({
    mounts: new Map(),
    policies: new Map(),
    userpass: new Map(),
    ldap: new Map(),
    approle: new Map(),
    jwt: { roles: new Map() },
    oidc: { roles: new Map() },
  });
  namespaces.set('', newNamespace());
  const ns = (name = '') => {
    const found = namespaces.get(name);
    if (!found) throw new Error(`fake vault: no namespace ${name}`);
    return found;
  };
  // Vault's built-in default policy: a token may look itself up, renew itself and read its own entity.
  const defaultPolicy: Policy = {
    'auth/token/lookup-self': ['read'],
    'auth/token/renew-self': ['update'],
    'identity/entity/id/{{identity.entity.id}}': ['read'],
  };

  function entityFor(identity: Identity, namespace: string): string {
    const name =
      identity.entityName ??
      `entity_${createHash('sha256')
        .update(namespace + identity.alias)
        .digest('hex')
        .slice(0, 8)}`;
    for (const entity of entities.values()) if (entity.name === name && entity.namespace === namespace) return entity.id;
    const id = randomUUID();
    entities.set(id, { id, name, namespace });
    return id;
  }

  function issue(
    identity: Identity,
    options: { namespace: string; authPath: string; mountPrefix: string; ttlSeconds?: number; renewable?: boolean },
  ): Token {
    const id = `hvs.${randomBytes(18).toString('base64url')}`;
    const ttl = options.ttlSeconds ?? 3600;
    const token: Token = {
      id,
      accessor: randomBytes(12).toString('base64url'),
      namespace: options.namespace,
      policies: ['default', ...identity.policies],
      displayName: `${options.mountPrefix}-${identity.alias}`,
      entityId: entityFor(identity, options.namespace),
      path: options.authPath,
      meta: identity.meta ?? null,
      creationTtl: ttl,
      expiresAt: ttl > 0 ? Date.now() + ttl * 1000 : undefined,
      renewable: options.renewable ?? true,
      issuedAt: Date.now(),
    };
    tokens.set(id, token);
    return token;
  }

  const rootToken = `hvs.root${randomBytes(12).toString('base64url')}`;
  tokens.set(rootToken, {
    id: rootToken,
    accessor: 'root-accessor',
    namespace: '',
    policies: ['root'],
    displayName: 'root',
    entityId: '',
    path: 'auth/token/root',
    meta: null,
    creationTtl: 0,
    expiresAt: undefined,
    renewable: false,
    issuedAt: Date.now(),
  });

  function authResponse(token: Token) {
    return {
      request_id: randomUUID(),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data: null,
      wrap_info: null,
      warnings: null,
      auth: {
        client_token: token.id,
        accessor: token.accessor,
        policies: token.policies,
        token_policies: token.policies,
        metadata: token.meta,
        lease_duration: token.creationTtl,
        renewable: token.renewable,
        entity_id: token.entityId,
        token_type: 'service',
        orphan: true,
      },
    };
  }

  /** Does any of the token's policies grant `capability` on `path`? (deny wins, longest match as Vault.) */
  function allowed(token: Token, path: string, capability: Capability): boolean {
    if (token.policies.includes('root')) return true;
    const space = namespaces.get(token.namespace)!;
    let best: { length: number; capabilities: Capability[] } | undefined;
    for (const name of token.policies) {
      const policy = name === 'default' ? defaultPolicy : space.policies.get(name);
      for (const [pattern, capabilities] of Object.entries(policy ?? {})) {
        const concrete = pattern.replaceAll('{{identity.entity.id}}', token.entityId);
        if (!matches(concrete, path)) continue;
        const length = concrete.replace(/\*$/, '').length;
        if (!best || length > best.length) best = { length, capabilities: [...capabilities] };
        else if (length === best.length) best.capabilities.push(...capabilities);
      }
    }
    return Boolean(best && !best.capabilities.includes('deny') && best.capabilities.includes(capability));
  }

  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    let text = '';
    req.on('data', (chunk) => (text += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://vault');
      const namespace = String(req.headers['x-vault-namespace'] ?? '').replace(/^\/+|\/+$/g, '');
      const tokenId = req.headers['x-vault-token'] as string | undefined;
      const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
        requests.push({ method: req.method ?? '', path: url.pathname, namespace, token: Boolean(tokenId), status });
        if (body === undefined) {
          res.writeHead(status, headers).end();
          return;
        }
        const json = JSON.stringify(body);
        res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(json);
      };
      const fail = (status: number, ...errors: string[]) => reply(status, { errors });
      if (failures.count > 0) {
        failures.count--;
        return fail(failures.status, `1 error occurred:\n\t* internal error\n\n`);
      }
      if (quota.left > 0 && url.pathname.startsWith(`/v1/${quota.pathPrefix}`)) {
        quota.left--;
        quota.given++;
        res.setHeader('Retry-After', String(quota.retryAfterSeconds));
        res.setHeader('X-RateLimit-Limit', '10');
        res.setHeader('X-RateLimit-Remaining', '0');
        res.setHeader('X-RateLimit-Reset', String(quota.retryAfterSeconds));
        return fail(429, `request path "${decodeURIComponent(url.pathname.slice(4))}": rate limit quota exceeded`);
      }
      try {
        route(req.method ?? 'GET', url, namespace, tokenId, text, reply, fail);
      } catch (error) {
        fail(500, `1 error occurred:\n\t* ${(error as Error).message}\n\n`);
      }
    });
  };
  const server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);

  type Reply = (status: number, body?: unknown, headers?: Record<string, string>) => void;
  type Fail = (status: number, ...errors: string[]) => void;

  function route(method: string, url: URL, namespace: string, tokenId: string | undefined, text: string, reply: Reply, fail: Fail) {
    if (!url.pathname.startsWith('/v1/')) return fail(404);
    const apiPath = decodeURIComponent(url.pathname.slice(4)).replace(/\/+$/, url.pathname.endsWith('/') ? '/' : '');
    if (apiPath === 'sys/health') {
      return reply(sealed ? 503 : 200, {
        initialized: true,
        sealed,
        standby: false,
        version: '1.17.2',
        cluster_name: 'fake-vault',
        server_time_utc: Math.floor(Date.now() / 1000),
      });
    }
    if (url.pathname.startsWith('/v1/fake-idp/')) return fakeIdentityProvider(url, reply);
    const space = namespaces.get(namespace);
    if (!space) return fail(404, `no handler for route "${apiPath}". route entry not found.`);
    let body: Record<string, any> = {};
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        return fail(400, 'failed to parse JSON input: invalid character');
      }
    }
    const isList = method === 'LIST' || (method === 'GET' && ['true', '1'].includes(url.searchParams.get('list') ?? ''));

    // Unauthenticated: the login endpoints.
    const login = /^auth\/(.+?)\/(login(?:\/(.+))?|oidc\/auth_url|oidc\/callback)$/.exec(apiPath);
    if (login) return authMethod(login[1]!, login[2]!, login[3], method, body, url, namespace, space, reply, fail);

    if (sealed) return fail(503, 'Vault is sealed');
    const token = tokenId ? tokens.get(tokenId) : undefined;
    if (!token || (token.expiresAt !== undefined && token.expiresAt <= Date.now())) return fail(403, 'permission denied');
    // A token works in its own namespace and below it (its policies see the child's paths
    // prefixed with the child's name); from a parent or a sibling namespace it is unknown.
    const inside = token.namespace === '' || namespace === token.namespace || namespace.startsWith(`${token.namespace}/`);
    if (!inside) return fail(403, 'permission denied');
    const below = namespace.slice(token.namespace.length).replace(/^\//, '');
    const may = (path: string, capability: Capability) => allowed(token, below ? `${below}/${path}` : path, capability);

    if (apiPath === 'auth/token/lookup-self' && method === 'GET') {
      if (!may(apiPath, 'read')) return fail(403, PERMISSION_DENIED);
      return reply(200, { data: lookupData(token) });
    }
    if (apiPath === 'auth/token/renew-self' && (method === 'POST' || method === 'PUT')) {
      if (!may(apiPath, 'update')) return fail(403, PERMISSION_DENIED);
      if (!token.renewable) return fail(400, 'lease is not renewable');
      const increment = typeof body['increment'] === 'number' ? body['increment'] : token.creationTtl;
      token.expiresAt = Date.now() + increment * 1000;
      renewals.set(token.id, (renewals.get(token.id) ?? 0) + 1);
      return reply(200, authResponse(token));
    }
    const entity = /^identity\/entity\/id\/([^/]+)$/.exec(apiPath);
    if (entity && method === 'GET') {
      if (!may(apiPath, 'read')) return fail(403, PERMISSION_DENIED);
      const found = entities.get(entity[1]!);
      if (!found || found.namespace !== namespace) return fail(404);
      return reply(200, {
        data: { id: found.id, name: found.name, aliases: [], policies: [], disabled: false, namespace_id: namespace || 'root' },
      });
    }

    const mountName = [...space.mounts.keys()]
      .sort((a, b) => b.length - a.length)
      .find((name) => apiPath === name || apiPath.startsWith(`${name}/`));
    if (!mountName) return fail(404, `no handler for route "${apiPath}". route entry not found.`);
    const mount = space.mounts.get(mountName)!;
    const rest = apiPath.slice(mountName.length + 1);
    if (mount.version === 1) return kv1(mount, mountName, rest, method, isList, body, may, reply, fail);
    return kv2(mount, mountName, rest, method, isList, url, body, may, reply, fail);
  }

  function lookupData(token: Token) {
    const ttl = token.expiresAt === undefined ? 0 : Math.max(0, Math.round((token.expiresAt - Date.now()) / 1000));
    return {
      accessor: token.accessor,
      creation_time: Math.floor(token.issuedAt / 1000),
      creation_ttl: token.creationTtl,
      display_name: token.displayName,
      entity_id: token.entityId,
      expire_time: token.expiresAt === undefined ? null : new Date(token.expiresAt).toISOString(),
      explicit_max_ttl: 0,
      id: token.id,
      meta: token.meta,
      num_uses: 0,
      orphan: true,
      path: token.path,
      policies: token.policies,
      renewable: token.renewable,
      ttl,
      type: 'service',
      namespace_path: token.namespace ? `${token.namespace}/` : '',
    };
  }

  function authMethod(
    mountPath: string,
    action: string,
    username: string | undefined,
    method: string,
    body: Record<string, any>,
    url: URL,
    namespace: string,
    space: Namespace,
    reply: Reply,
    fail: Fail,
  ) {
    const post = method === 'POST' || method === 'PUT';
    const loginAs = (identity: Identity, authPath: string) =>
      reply(200, authResponse(issue(identity, { namespace, authPath, mountPrefix: mountPath.replaceAll('/', '-') })));
    if (mountPath === 'userpass' || mountPath === 'ldap') {
      if (!post || !username) return fail(405, '1 error occurred:\n\t* unsupported operation\n\n');
      const users = mountPath === 'ldap' ? space.ldap : space.userpass;
      const user = users.get(username);
      if (typeof body['password'] !== 'string' || body['password'] === '') return fail(400, 'missing password');
      if (!user || user.password !== body['password'])
        return fail(400, mountPath === 'ldap' ? 'ldap operation failed: failed to bind as user' : 'invalid username or password');
      return loginAs(user, `auth/${mountPath}/login/${username}`);
    }
    if (mountPath === 'approle' && action === 'login' && post) {
      if (!body['role_id']) return fail(400, 'missing role_id');
      const role = [...space.approle.values()].find((candidate) => candidate.roleId === body['role_id']);
      if (!role) return fail(400, 'invalid role or secret ID');
      if (!role.secretIds.has(String(body['secret_id'] ?? ''))) return fail(400, 'invalid role or secret ID');
      return loginAs({ ...role }, 'auth/approle/login');
    }
    if (mountPath === 'jwt' && action === 'login' && post) {
      const role = space.jwt.roles.get(String(body['role'] ?? ''));
      if (!role) return fail(400, `role "${body['role']}" could not be found`);
      if (typeof body['jwt'] !== 'string' || !body['jwt']) return fail(400, 'missing token');
      const claims = verifyJwt(body['jwt'], space.jwt.publicKey);
      if (typeof claims === 'string') return fail(400, `error validating token: ${claims}`);
      const audiences = Array.isArray(claims['aud']) ? claims['aud'] : [claims['aud']];
      if (role.boundAudiences.length && !audiences.some((audience) => role.boundAudiences.includes(String(audience)))) {
        return fail(400, 'error validating claims: aud claim does not match any bound audience');
      }
      const user = claims[role.userClaim];
      if (typeof user !== 'string') return fail(400, `claim "${role.userClaim}" not found in token`);
      return loginAs({ alias: user, policies: role.policies, meta: { role: String(body['role']) } }, 'auth/jwt/login');
    }
    if (action === 'oidc/auth_url' && post) {
      const roleName = String(body['role'] || space.oidc.defaultRole || '');
      const role = space.oidc.roles.get(roleName);
      if (!role) return fail(400, `role "${roleName}" could not be found`);
      const redirectUri = String(body['redirect_uri'] ?? '');
      if (!redirectUri) return fail(400, 'missing redirect_uri');
      // Vault answers an unlisted redirect_uri with an empty auth_url (and the CLI reports it).
      if (!role.allowedRedirectUris.includes(redirectUri)) return reply(200, { data: { auth_url: '' }, warnings: null });
      const state = `st_${randomBytes(12).toString('hex')}`;
      const nonce = `n_${randomBytes(12).toString('hex')}`;
      oidcPending.set(state, {
        code: randomBytes(12).toString('hex'),
        nonce,
        clientNonce: String(body['client_nonce'] ?? ''),
        redirectUri,
        role: roleName,
        namespace,
      });
      const idp = new URL(`${addressOf()}/v1/fake-idp/authorize`);
      idp.search = new URLSearchParams({
        client_id: 'vault',
        response_type: 'code',
        scope: 'openid',
        redirect_uri: redirectUri,
        state,
        nonce,
      }).toString();
      return reply(200, { data: { auth_url: idp.toString() } });
    }
    if (action === 'oidc/callback' && method === 'GET') {
      const state = url.searchParams.get('state') ?? '';
      const pending = oidcPending.get(state);
      if (!pending || pending.namespace !== namespace) return fail(400, 'Expired or missing OAuth state.');
      if (pending.code !== url.searchParams.get('code')) return fail(400, 'Error exchanging oidc code: invalid code');
      if (pending.clientNonce && pending.clientNonce !== url.searchParams.get('client_nonce')) return fail(400, 'invalid client_nonce');
      oidcPending.delete(state);
      const role = space.oidc.roles.get(pending.role)!;
      return loginAs(role.identity, `auth/${mountPath}/oidc/callback`);
    }
    return fail(405, '1 error occurred:\n\t* unsupported operation\n\n');
  }

  /** The identity provider's authorize endpoint: signs the user in at once and redirects with a code. */
  function fakeIdentityProvider(url: URL, reply: Reply) {
    const state = url.searchParams.get('state') ?? '';
    const pending = oidcPending.get(state);
    if (!pending || pending.redirectUri !== url.searchParams.get('redirect_uri')) return reply(400, { error: 'invalid_request' });
    const target = new URL(pending.redirectUri);
    target.search = new URLSearchParams({ state, code: pending.code }).toString();
    reply(302, undefined, { Location: target.toString() });
  }

  type May = (path: string, capability: Capability) => boolean;

  function kv1(
    mount: Mount,
    mountName: string,
    name: string,
    method: string,
    isList: boolean,
    body: Record<string, any>,
    may: May,
    reply: Reply,
    fail: Fail,
  ) {
    const full = `${mountName}/${name}`;
    if (isList) {
      if (!may(full, 'list')) return fail(403, PERMISSION_DENIED);
      const keys = childKeys([...mount.v1.keys()], name);
      return keys.length ? reply(200, { data: { keys } }) : reply(404, { errors: [] });
    }
    if (method === 'GET') {
      if (!may(full, 'read')) return fail(403, PERMISSION_DENIED);
      const data = mount.v1.get(name);
      return data
        ? reply(200, {
            request_id: randomUUID(),
            lease_id: '',
            renewable: false,
            lease_duration: 2764800,
            data,
            wrap_info: null,
            warnings: null,
            auth: null,
          })
        : reply(404, { errors: [] });
    }
    if (method === 'POST' || method === 'PUT') {
      if (!may(full, mount.v1.has(name) ? 'update' : 'create')) return fail(403, PERMISSION_DENIED);
      mount.v1.set(name, body);
      return reply(204);
    }
    if (method === 'DELETE') {
      if (!may(full, 'delete')) return fail(403, PERMISSION_DENIED);
      mount.v1.delete(name);
      return reply(204);
    }
    return fail(405, '1 error occurred:\n\t* unsupported operation\n\n');
  }

  function versionMetadata(version: KvVersion, number: number, secret: KvSecret) {
    return {
      created_time: version.createdTime,
      custom_metadata: secret.customMetadata,
      deletion_time: version.deletionTime,
      destroyed: version.destroyed,
      version: number,
    };
  }

  function kv2(
    mount: Mount,
    mountName: string,
    rest: string,
    method: string,
    isList: boolean,
    url: URL,
    body: Record<string, any>,
    may: May,
    reply: Reply,
    fail: Fail,
  ) {
    const match = /^(data|metadata|delete|undelete|destroy|config)(?:\/(.*))?$/.exec(rest);
    if (!match) {
      return reply(404, {
        errors: [],
        warnings: [
          `Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.`,
        ],
      });
    }
    const [, kind, name = ''] = match;
    const full = `${mountName}/${kind}/${name}`;
    const secret = mount.v2.get(name);
    const now = new Date().toISOString();
    const denied = () => fail(403, PERMISSION_DENIED);
    const live = (version: KvVersion) => !version.destroyed && (!version.deletionTime || Date.parse(version.deletionTime) > Date.now());

    if (kind === 'metadata' && isList) {
      if (!may(full, 'list')) return denied();
      const keys = childKeys([...mount.v2.keys()], name);
      return keys.length ? reply(200, { data: { keys } }) : reply(404, { errors: [] });
    }
    if (kind === 'data' && method === 'GET') {
      if (!may(full, 'read')) return denied();
      if (!secret || secret.versions.length === 0) return reply(404, { errors: [] });
      const wanted = Number(url.searchParams.get('version') ?? 0) || secret.versions.length;
      const version = secret.versions[wanted - 1];
      if (!version) return reply(404, { errors: [] });
      const metadata = versionMetadata(version, wanted, secret);
      // A deleted or destroyed version: 404 with the version's metadata and no data, as Vault does.
      if (!live(version)) return reply(404, { request_id: randomUUID(), data: { data: null, metadata }, warnings: null });
      return reply(200, {
        request_id: randomUUID(),
        lease_id: '',
        renewable: false,
        lease_duration: 0,
        data: { data: version.data, metadata },
        wrap_info: null,
        warnings: null,
        auth: null,
      });
    }
    if (kind === 'data' && (method === 'POST' || method === 'PUT')) {
      if (!may(full, secret ? 'update' : 'create')) return denied();
      if (!body['data'] || typeof body['data'] !== 'object') return fail(400, 'no data provided');
      const cas = body['options']?.['cas'];
      const current = secret?.versions.length ?? 0;
      if (cas === undefined && secret?.casRequired) return fail(400, 'check-and-set parameter required for this call');
      if (cas !== undefined && Number(cas) !== current) return fail(400, 'check-and-set parameter did not match the current version');
      const target = secret ?? { versions: [], customMetadata: null, casRequired: false, createdTime: now, updatedTime: now };
      target.versions.push({ data: body['data'], createdTime: now, deletionTime: '', destroyed: false });
      target.updatedTime = now;
      mount.v2.set(name, target);
      const number = target.versions.length;
      return reply(200, { request_id: randomUUID(), data: versionMetadata(target.versions[number - 1]!, number, target) });
    }
    if (kind === 'data' && method === 'DELETE') {
      if (!may(full, 'delete')) return denied();
      const latest = secret?.versions.at(-1);
      if (latest && !latest.deletionTime) latest.deletionTime = now;
      return reply(204);
    }
    if (kind === 'metadata' && method === 'GET') {
      if (!may(full, 'read')) return denied();
      if (!secret) return reply(404, { errors: [] });
      const versions = Object.fromEntries(
        secret.versions.map((version, index) => [
          String(index + 1),
          { created_time: version.createdTime, deletion_time: version.deletionTime, destroyed: version.destroyed },
        ]),
      );
      const live = secret.versions.filter((version) => !version.destroyed && !version.deletionTime).length;
      return reply(200, {
        data: {
          cas_required: secret.casRequired,
          created_time: secret.createdTime,
          current_version: secret.versions.length,
          custom_metadata: secret.customMetadata,
          delete_version_after: '0s',
          max_versions: 0,
          oldest_version: live ? 1 : 0,
          updated_time: secret.updatedTime,
          versions,
        },
      });
    }
    if (kind === 'metadata' && (method === 'POST' || method === 'PUT')) {
      if (!may(full, secret ? 'update' : 'create')) return denied();
      const custom = body['custom_metadata'];
      if (custom !== undefined && (typeof custom !== 'object' || Object.values(custom).some((value) => typeof value !== 'string'))) {
        return fail(400, 'custom_metadata values must be strings');
      }
      const target = secret ?? { versions: [], customMetadata: null, casRequired: false, createdTime: now, updatedTime: now };
      if (custom !== undefined) target.customMetadata = custom;
      if (body['cas_required'] !== undefined) target.casRequired = Boolean(body['cas_required']);
      target.updatedTime = now;
      mount.v2.set(name, target);
      return reply(204);
    }
    if (kind === 'metadata' && method === 'DELETE') {
      if (!may(full, 'delete')) return denied();
      mount.v2.delete(name);
      return reply(204);
    }
    if ((kind === 'delete' || kind === 'undelete' || kind === 'destroy') && (method === 'POST' || method === 'PUT')) {
      if (!may(full, 'update')) return denied();
      const versions = body['versions'];
      if (!Array.isArray(versions) || versions.length === 0) return fail(400, 'no version number provided');
      for (const number of versions) {
        const version = secret?.versions[Number(number) - 1];
        if (!version) continue;
        if (kind === 'delete' && !version.deletionTime) version.deletionTime = now;
        if (kind === 'undelete' && !version.destroyed) version.deletionTime = '';
        if (kind === 'destroy') (version.destroyed = true), (version.data = null);
      }
      return reply(204);
    }
    return fail(405, '1 error occurred:\n\t* unsupported operation\n\n');
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const addressOf = () => `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  return {
    port,
    address: addressOf(),
    rootToken,
    requests,
    addNamespace: (name) => void namespaces.set(name, newNamespace()),
    mountKv: (path, version, namespace) => void ns(namespace).mounts.set(path, { version, v1: new Map(), v2: new Map() }),
    setPolicy: (name, policy, namespace) => void ns(namespace).policies.set(name, policy),
    createToken(identity) {
      const authPath = identity.authPath ?? 'auth/token/create';
      const mountPrefix = /^auth\/(.+?)\/(login|oidc|callback|create)/.exec(authPath)?.[1]?.replaceAll('/', '-') ?? 'token';
      const options = {
        namespace: identity.namespace ?? '',
        authPath,
        mountPrefix,
        ...(identity.ttlSeconds !== undefined ? { ttlSeconds: identity.ttlSeconds } : {}),
        ...(identity.renewable !== undefined ? { renewable: identity.renewable } : {}),
      };
      const token = issue(identity, options);
      // A token issued a while ago: its TTL has partly run down.
      if (identity.remainingSeconds !== undefined) token.expiresAt = Date.now() + identity.remainingSeconds * 1000;
      return token.id;
    },
    revokeToken: (token) => void tokens.delete(token),
    tokenState(token) {
      const found = tokens.get(token);
      return found ? { ttl: lookupData(found).ttl, renewCount: renewals.get(token) ?? 0 } : undefined;
    },
    addUserpass(username, password, identity, method = 'userpass', namespace) {
      const space = ns(namespace);
      (method === 'ldap' ? space.ldap : space.userpass).set(username, {
        password,
        alias: username,
        ...identity,
        meta: { username, ...identity.meta },
      });
    },
    addApprole(roleName, identity, namespace) {
      const roleId = randomUUID();
      const secretId = randomUUID();
      ns(namespace).approle.set(roleName, {
        roleId,
        secretIds: new Set([secretId]),
        alias: roleId,
        ...identity,
        meta: { role_name: roleName, ...identity.meta },
      });
      return { roleId, secretId };
    },
    configureJwt(publicKeyPem, roles, namespace) {
      const space = ns(namespace);
      space.jwt.publicKey = createPublicKey(publicKeyPem);
      for (const [name, role] of Object.entries(roles)) space.jwt.roles.set(name, role);
    },
    addOidcRole(role, allowedRedirectUris, identity, namespace) {
      const space = ns(namespace);
      space.oidc.roles.set(role, { allowedRedirectUris, identity });
      space.oidc.defaultRole ??= role;
    },
    failNext: (count, status) => void (failures = { count, status }),
    throttle(count, { pathPrefix = '', retryAfterSeconds = 1 } = {}) {
      Object.assign(quota, { left: count, pathPrefix, retryAfterSeconds });
    },
    throttled: () => quota.given,
    setSealed: (value) => void (sealed = value),
    async kvPut(name, data, { mount = 'secret', namespace } = {}) {
      const v1 = ns(namespace).mounts.get(mount)?.version === 1;
      const response = await fetch(`${addressOf()}/v1/${mount}/${v1 ? '' : 'data/'}${name}`, {
        method: 'POST',
        headers: {
          'X-Vault-Token': rootToken,
          'Content-Type': 'application/json',
          ...(namespace ? { 'X-Vault-Namespace': namespace } : {}),
        },
        body: JSON.stringify(v1 ? data : { data }),
      });
      if (response.status >= 300) throw new Error(`kv put ${mount}/${name} failed: HTTP ${response.status} ${await response.text()}`);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Vault's ACL path match: `*` as the last character is a prefix glob, `+` matches one segment. */
function matches(pattern: string, path: string): boolean {
  const glob = pattern.endsWith('*');
  const patternParts = (glob ? pattern.slice(0, -1) : pattern).split('/');
  const pathParts = path.split('/');
  for (let index = 0; index < patternParts.length; index++) {
    const part = patternParts[index]!;
    const actual = pathParts[index];
    if (actual === undefined) return false;
    const last = index === patternParts.length - 1;
    if (part === '+') continue;
    if (last && glob) return actual.startsWith(part);
    if (part !== actual) return false;
  }
  return glob ? pathParts.length >= patternParts.length : pathParts.length === patternParts.length;
}

/** The immediate children of `folder` among `names`: secrets as they are, sub-folders with a trailing "/". */
function childKeys(names: string[], folder: string): string[] {
  const base = folder === '' || folder.endsWith('/') ? folder : `${folder}/`;
  const keys = new Set<string>();
  for (const name of names) {
    if (!name.startsWith(base)) continue;
    const rest = name.slice(base.length);
    const slash = rest.indexOf('/');
    keys.add(slash === -1 ? rest : rest.slice(0, slash + 1));
  }
  return [...keys].sort();
}

/** An ES256 JWT as Vault's jwt auth checks it with jwt_validation_pubkeys: signature, exp, nbf. */
function verifyJwt(jwt: string, publicKey: KeyObject | undefined): Record<string, unknown> | string {
  if (!publicKey) return 'no known key';
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'square/go-jose: compact JWS format must have three parts';
  const [header, payload, signature] = parts as [string, string, string];
  let claims: Record<string, unknown>;
  try {
    const alg = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: string }).alg;
    if (alg !== 'ES256') return `unsupported signing algorithm "${alg}"`;
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  } catch {
    return 'malformed token';
  }
  const valid = verify(
    'sha256',
    Buffer.from(`${header}.${payload}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(signature, 'base64url'),
  );
  if (!valid) return 'failed to verify id token signature';
  const now = Date.now() / 1000;
  if (typeof claims['exp'] === 'number' && claims['exp'] < now - 150) return 'token is expired (exp)';
  if (typeof claims['nbf'] === 'number' && claims['nbf'] > now + 150) return 'token not valid yet (nbf)';
  return claims;
}
