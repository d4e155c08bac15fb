// A protocol-faithful GCP Secret Manager for tests, written from the service's documentation:
// real gRPC over TLS (test CA from tls.ts) built from the protos.json the SDK ships,
// a bearer token checked on every call, IAM permissions per method with project-level bindings
// (optionally conditioned on resource.name.startsWith, as real IAM Conditions allow), the
// service's status codes and messages, resource names with the project NUMBER as the real API
// returns them, `latest` = the newest version whatever its state, and Google's OAuth token and
// tokeninfo endpoints for authorized_user (gcloud ADC) credentials.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { makeTestCertificates } from './tls.ts';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

export interface FakeUser {
  email: string;
  refreshToken: string;
  /** Whether the user's grant includes openid (gcloud's ADC login does): the token response then carries an id_token. */
  openid?: boolean;
}

interface Binding {
  role:
    | 'roles/secretmanager.secretAccessor'
    | 'roles/secretmanager.viewer'
    | 'roles/secretmanager.admin'
    | 'roles/secretmanager.secretVersionManager';
  member: string;
  /** IAM Condition `resource.name.startsWith("...")` on the name with the project number. */
  resourcePrefix?: string;
}

export interface GcpFakeOptions {
  projectId: string;
  projectNumber: string;
  users: FakeUser[];
  bindings: Binding[];
}

/** The OAuth client an ADC file names (gcloud's, in real files); the token endpoint checks it. */
export const GCLOUD_CLIENT = { id: 'keybroker-test-client.apps.googleusercontent.com', secret: 'test-client-secret' };

interface Version {
  number: number;
  state: 'ENABLED' | 'DISABLED' | 'DESTROYED';
  createTime: Date;
  destroyTime?: Date;
  data: Buffer;
  crc32c: number;
}

interface Secret {
  id: string;
  createTime: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  replication: unknown;
  versions: Version[];
}

export interface GcpFake {
  /** The gRPC (TLS) port of Secret Manager. */
  port: number;
  /** The OAuth token endpoint: the token_uri of the ADC files. */
  tokenUri: string;
  /** PEM of the test CA that signed the server's certificate. */
  caFile: string;
  projectId: string;
  projectNumber: string;
  /** Writes an authorized_user ADC file (what `gcloud auth application-default login` writes) for a user. */
  writeAdcFile(dir: string, user: FakeUser): string;
  /** Every call: method and the principal that made it (undefined when unauthenticated). */
  calls: { method: string; principal?: string }[];
  /** corruptChecksum: AccessSecretVersion sends a wrong data_crc32c; apiDisabled: the project has not enabled the API. */
  faults: { corruptChecksum: boolean; apiDisabled: boolean };
  /**
   * The next `count` AccessSecretVersion calls fail as the per-project access quota does:
   * RESOURCE_EXHAUSTED with Google's quota message and ErrorInfo, plus a RetryInfo when given.
   */
  throttleReads(count: number, retryDelayMs?: number): void;
  /** AccessSecretVersion calls refused with RESOURCE_EXHAUSTED so far. */
  throttledReads(): number;
  revokeRefreshToken(refreshToken: string): void;
  /** An access token for a user, as the token endpoint would issue it. */
  issueToken(email: string): string;
  /** A raw gRPC client (not the SDK) with a bearer token (none when undefined): the admin's independent path. */
  rawCall<T>(method: string, request: object, accessToken: string | undefined): Promise<T>;
  stop(): Promise<void>;
}

const PERMISSIONS: Record<Binding['role'], string[]> = {
  'roles/secretmanager.secretAccessor': ['secretmanager.versions.access'],
  'roles/secretmanager.viewer': [
    'secretmanager.secrets.get',
    'secretmanager.secrets.list',
    'secretmanager.versions.get',
    'secretmanager.versions.list',
  ],
  'roles/secretmanager.secretVersionManager': [
    'secretmanager.secrets.get',
    'secretmanager.versions.add',
    'secretmanager.versions.enable',
    'secretmanager.versions.disable',
    'secretmanager.versions.destroy',
    'secretmanager.versions.get',
    'secretmanager.versions.list',
  ],
  'roles/secretmanager.admin': ['*'],
};

const PROTO_OPTIONS = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

class StatusError extends Error {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata | undefined;
  constructor(code: grpc.status, details: string, metadata?: grpc.Metadata) {
    super(details);
    this.code = code;
    this.details = details;
    this.metadata = metadata;
  }
}

let rpcStatusRoot: protobuf.Root | undefined;
/**
 * Trailers with a google.rpc.Status as Google's quota errors carry it (grpc-status-details-bin):
 * an ErrorInfo RATE_LIMIT_EXCEEDED, and a RetryInfo when `retryDelayMs` is given.
 */
function quotaStatusDetails(message: string, projectNumber: string, retryDelayMs: number | undefined): grpc.Metadata {
  // The google.rpc protos google-gax decodes these with (its package exports no subpaths).
  const statusJson = path.join(path.dirname(require.resolve('google-gax')), '..', 'protos', 'status.json');
  rpcStatusRoot ??= protobuf.Root.fromJSON(JSON.parse(fs.readFileSync(statusJson, 'utf8')) as protobuf.INamespace);
  const any = (type: string, value: object) => ({
    type_url: `type.googleapis.com/${type}`,
    value: rpcStatusRoot!.lookupType(type).encode(rpcStatusRoot!.lookupType(type).fromObject(value)).finish(),
  });
  const details = [
    any('google.rpc.ErrorInfo', {
      reason: 'RATE_LIMIT_EXCEEDED',
      domain: 'googleapis.com',
      metadata: {
        service: 'secretmanager.googleapis.com',
        consumer: `projects/${projectNumber}`,
        quota_metric: 'secretmanager.googleapis.com/access_requests',
        quota_limit: 'AccessRequestsPerMinutePerProject',
      },
    }),
  ];
  if (retryDelayMs !== undefined) {
    details.push(
      any('google.rpc.RetryInfo', { retryDelay: { seconds: Math.floor(retryDelayMs / 1000), nanos: (retryDelayMs % 1000) * 1e6 } }),
    );
  }
  const status = rpcStatusRoot.lookupType('google.rpc.Status');
  const metadata = new grpc.Metadata();
  metadata.set(
    'grpc-status-details-bin',
    Buffer.from(status.encode(status.fromObject({ code: grpc.status.RESOURCE_EXHAUSTED, message, details })).finish()),
  );
  return metadata;
}

/** CRC32C bit by bit: an implementation independent of the provider's table-driven one. */
export function referenceCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function loadService() {
  const json = require('@google-cloud/secret-manager/build/protos/protos.json') as protoLoader.Options;
  const definition = protoLoader.fromJSON(json as never, PROTO_OPTIONS);
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    google: { cloud: { secretmanager: { v1: { SecretManagerService: grpc.ServiceClientConstructor } } } };
  };
  return root.google.cloud.secretmanager.v1.SecretManagerService;
}

export async function startGcpFake(options: GcpFakeOptions): Promise<GcpFake> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-gcp-'));
  const certs = makeTestCertificates(dir);
  const { projectId, projectNumber } = options;
  const secrets = new Map<string, Secret>();
  const refreshTokens = new Map(options.users.map((user) => [user.refreshToken, user]));
  const accessTokens = new Map<string, { email: string; expiresAt: number; scope: string }>();
  const calls: GcpFake['calls'] = [];
  const faults = { corruptChecksum: false, apiDisabled: false };
  const throttle: { left: number; given: number; retryDelayMs: number | undefined } = { left: 0, given: 0, retryDelayMs: undefined };

  const issueToken = (email: string) => {
    const token = `test-access-token-${randomBytes(12).toString('hex')}`;
    accessTokens.set(token, {
      email,
      expiresAt: Date.now() + 3_600_000,
      scope: 'openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/cloud-platform',
    });
    return token;
  };

  // --- Google's OAuth endpoints (oauth2.googleapis.com/token and /tokeninfo) ---
  const oauth = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://127.0.0.1');
      const answer = (status: number, json: object) => {
        response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        response.end(JSON.stringify(json));
      };
      const form = new URLSearchParams(body);
      if (url.pathname === '/token' && request.method === 'POST') {
        if (form.get('grant_type') !== 'refresh_token')
          return answer(400, { error: 'unsupported_grant_type', error_description: `Invalid grant_type: ${form.get('grant_type') ?? ''}` });
        if (form.get('client_id') !== GCLOUD_CLIENT.id || form.get('client_secret') !== GCLOUD_CLIENT.secret) {
          return answer(401, { error: 'invalid_client', error_description: 'Unauthorized' });
        }
        const user = refreshTokens.get(form.get('refresh_token') ?? '');
        if (!user) return answer(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
        const token = issueToken(user.email);
        const reply: Record<string, unknown> = {
          access_token: token,
          expires_in: 3599,
          scope: accessTokens.get(token)!.scope,
          token_type: 'Bearer',
        };
        if (user.openid) reply['id_token'] = idToken(user.email);
        return answer(200, reply);
      }
      if (url.pathname === '/tokeninfo') {
        const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1];
        const token = bearer ?? url.searchParams.get('access_token') ?? form.get('access_token') ?? '';
        const info = accessTokens.get(token);
        if (!info || info.expiresAt < Date.now()) return answer(400, { error: 'invalid_token', error_description: 'Invalid Value' });
        const expiresIn = Math.floor((info.expiresAt - Date.now()) / 1000);
        return answer(200, {
          azp: GCLOUD_CLIENT.id,
          aud: GCLOUD_CLIENT.id,
          scope: info.scope,
          exp: String(Math.floor(info.expiresAt / 1000)),
          expires_in: String(expiresIn),
          email: info.email,
          email_verified: 'true',
          access_type: 'offline',
        });
      }
      answer(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => oauth.listen(0, '127.0.0.1', resolve));
  const tokenUri = `http://127.0.0.1:${(oauth.address() as { port: number }).port}/token`;

  // --- Secret Manager over gRPC ---
  const principalOf = (call: grpc.ServerUnaryCall<unknown, unknown>): string => {
    const header = call.metadata.get('authorization')[0];
    if (header === undefined) {
      throw new StatusError(
        grpc.status.UNAUTHENTICATED,
        'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      );
    }
    const token = /^Bearer (.+)$/.exec(String(header))?.[1] ?? '';
    const info = accessTokens.get(token);
    if (!info || info.expiresAt < Date.now()) {
      throw new StatusError(
        grpc.status.UNAUTHENTICATED,
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      );
    }
    return info.email;
  };

  /** The resource name with the project number, as IAM and the API's answers spell it. */
  const canonical = (name: string): string => name.replace(/^projects\/[^/]+/, `projects/${projectNumber}`);

  const authorize = (principal: string, permission: string, resource: string) => {
    const full = canonical(resource);
    const projectMatches = new RegExp(`^projects/(${escapeRegExp(projectId)}|${projectNumber})(/|$)`).test(resource);
    const allowed =
      projectMatches &&
      options.bindings.some(
        (binding) =>
          binding.member === `user:${principal}` &&
          (PERMISSIONS[binding.role].includes('*') || PERMISSIONS[binding.role].includes(permission)) &&
          (binding.resourcePrefix === undefined || full.startsWith(binding.resourcePrefix)),
      );
    if (!allowed)
      throw new StatusError(
        grpc.status.PERMISSION_DENIED,
        `Permission '${permission}' denied for resource '${resource}' (or it may not exist).`,
      );
  };

  const parseSecret = (name: string): string => {
    const match = /^projects\/[^/]+\/secrets\/([^/]+)$/.exec(name);
    if (!match)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `Invalid resource field value in the request: name "${name}" is not of the form projects/*/secrets/*.`,
      );
    return match[1]!;
  };
  const parseVersion = (name: string): { secret: string; version: string } => {
    const match = /^projects\/[^/]+\/secrets\/([^/]+)\/versions\/([^/]+)$/.exec(name);
    if (!match)
      throw new StatusError(
        grpc.status.INVALID_ARGUMENT,
        `Invalid resource field value in the request: name "${name}" is not of the form projects/*/secrets/*/versions/*.`,
      );
    return { secret: match[1]!, version: match[2]! };
  };
  const secretOrFail = (id: string): Secret => {
    const secret = secrets.get(id);
    if (!secret) throw new StatusError(grpc.status.NOT_FOUND, `Secret [projects/${projectNumber}/secrets/${id}] not found.`);
    return secret;
  };
  const versionOrFail = (id: string, version: string): { secret: Secret; version: Version } => {
    const secret = secrets.get(id);
    if (version === 'latest') {
      const newest = secret?.versions.at(-1);
      if (!secret || !newest)
        throw new StatusError(grpc.status.NOT_FOUND, `Secret [projects/${projectNumber}/secrets/${id}] not found or has no versions.`);
      return { secret, version: newest };
    }
    if (!/^[1-9][0-9]*$/.test(version))
      throw new StatusError(
        grpc.status.NOT_FOUND,
        `Secret Version [projects/${projectNumber}/secrets/${id}/versions/${version}] not found.`,
      );
    const found = secret?.versions.find((entry) => entry.number === Number(version));
    if (!secret || !found)
      throw new StatusError(
        grpc.status.NOT_FOUND,
        `Secret Version [projects/${projectNumber}/secrets/${id}/versions/${version}] not found.`,
      );
    return { secret, version: found };
  };
  const timestamp = (date: Date) => ({ seconds: String(Math.floor(date.getTime() / 1000)), nanos: (date.getTime() % 1000) * 1e6 });
  const secretResource = (secret: Secret) => ({
    name: `projects/${projectNumber}/secrets/${secret.id}`,
    createTime: timestamp(secret.createTime),
    labels: secret.labels,
    annotations: secret.annotations,
    replication: secret.replication,
    etag: `"${secret.createTime.getTime().toString(16)}"`,
  });
  const versionResource = (secret: Secret, version: Version) => ({
    name: `projects/${projectNumber}/secrets/${secret.id}/versions/${version.number}`,
    createTime: timestamp(version.createTime),
    ...(version.destroyTime ? { destroyTime: timestamp(version.destroyTime) } : {}),
    state: version.state,
    etag: `"${version.createTime.getTime().toString(16)}"`,
    clientSpecifiedPayloadChecksum: true,
  });
  const page = <T>(items: T[], request: { pageSize?: number; pageToken?: string }, cap: number) => {
    const offset = request.pageToken ? Number(Buffer.from(request.pageToken, 'base64url').toString()) : 0;
    if (!Number.isInteger(offset) || offset < 0) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'Invalid page token.');
    const size = Math.min(request.pageSize && request.pageSize > 0 ? request.pageSize : 25, cap);
    const slice = items.slice(offset, offset + size);
    const next = offset + size < items.length ? Buffer.from(String(offset + size)).toString('base64url') : '';
    return { slice, next };
  };

  const validateLabels = (labels: Record<string, string>) => {
    for (const [key, value] of Object.entries(labels)) {
      if (!/^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u.test(key) || !/^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u.test(value)) {
        throw new StatusError(
          grpc.status.INVALID_ARGUMENT,
          `Invalid label: ${key}=${value}. Label keys and values can only contain lowercase letters, numeric characters, underscores, and dashes.`,
        );
      }
    }
  };

  type Handler = (request: Record<string, unknown>, principal: string) => object;
  const handlers: Record<string, Handler> = {
    AccessSecretVersion(request, principal) {
      const name = String(request['name']);
      authorize(principal, 'secretmanager.versions.access', name);
      const { secret, version: versionName } = parseVersion(name);
      const { version } = versionOrFail(secret, versionName);
      if (version.state !== 'ENABLED') {
        throw new StatusError(
          grpc.status.FAILED_PRECONDITION,
          `Secret Version [projects/${projectNumber}/secrets/${secret}/versions/${version.number}] is in ${version.state} state.`,
        );
      }
      const crc = faults.corruptChecksum ? (version.crc32c ^ 1) >>> 0 : version.crc32c;
      return {
        name: `projects/${projectNumber}/secrets/${secret}/versions/${version.number}`,
        payload: { data: version.data, dataCrc32c: String(crc) },
      };
    },
    GetSecretVersion(request, principal) {
      const name = String(request['name']);
      authorize(principal, 'secretmanager.versions.get', name);
      const { secret: id, version: versionName } = parseVersion(name);
      const { secret, version } = versionOrFail(id, versionName);
      return versionResource(secret, version);
    },
    ListSecretVersions(request, principal) {
      const parent = String(request['parent']);
      authorize(principal, 'secretmanager.versions.list', parent);
      const secret = secretOrFail(parseSecret(parent));
      const filter = String(request['filter'] ?? '').trim();
      const state = /^state\s*[:=]\s*(ENABLED|DISABLED|DESTROYED)$/.exec(filter)?.[1];
      if (filter && !state) throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid filter: ${filter}`);
      const newestFirst = [...secret.versions].reverse().filter((version) => !state || version.state === state);
      const { slice, next } = page(newestFirst, request as { pageSize?: number; pageToken?: string }, 25_000);
      return {
        versions: slice.map((version) => versionResource(secret, version)),
        nextPageToken: next,
        totalSize: filter ? 0 : newestFirst.length,
      };
    },
    ListSecrets(request, principal) {
      const parent = String(request['parent']);
      authorize(principal, 'secretmanager.secrets.list', parent);
      if (!/^projects\/[^/]+$/.test(parent))
        throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid resource field value in the request: parent "${parent}".`);
      const matches = secretFilter(String(request['filter'] ?? ''));
      const all = [...secrets.values()].filter(matches).sort((a, b) => a.id.localeCompare(b.id));
      const { slice, next } = page(all, request as { pageSize?: number; pageToken?: string }, 25_000);
      return { secrets: slice.map(secretResource), nextPageToken: next, totalSize: request['filter'] ? 0 : all.length };
    },
    GetSecret(request, principal) {
      const name = String(request['name']);
      authorize(principal, 'secretmanager.secrets.get', name);
      return secretResource(secretOrFail(parseSecret(name)));
    },
    CreateSecret(request, principal) {
      const parent = String(request['parent']);
      authorize(principal, 'secretmanager.secrets.create', parent);
      const id = String(request['secretId'] ?? '');
      if (!/^[A-Za-z0-9_-]{1,255}$/.test(id)) {
        throw new StatusError(
          grpc.status.INVALID_ARGUMENT,
          `Invalid secret_id "${id}": a secret ID can contain uppercase and lowercase letters, numerals, hyphens and underscores, at most 255 characters.`,
        );
      }
      const body = (request['secret'] ?? {}) as {
        replication?: { replication?: string };
        labels?: Record<string, string>;
        annotations?: Record<string, string>;
      };
      if (!body.replication?.replication) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'Secret.replication must be specified.');
      validateLabels(body.labels ?? {});
      if (secrets.has(id))
        throw new StatusError(grpc.status.ALREADY_EXISTS, `Secret [projects/${projectNumber}/secrets/${id}] already exists.`);
      const secret: Secret = {
        id,
        createTime: new Date(),
        labels: { ...body.labels },
        annotations: { ...body.annotations },
        replication: body.replication,
        versions: [],
      };
      secrets.set(id, secret);
      return secretResource(secret);
    },
    UpdateSecret(request, principal) {
      const body = (request['secret'] ?? {}) as { name?: string; labels?: Record<string, string> };
      authorize(principal, 'secretmanager.secrets.update', String(body.name));
      const paths = ((request['updateMask'] ?? {}) as { paths?: string[] }).paths ?? [];
      if (paths.length === 0) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'update_mask must be specified.');
      const secret = secretOrFail(parseSecret(String(body.name)));
      for (const field of paths) {
        if (field !== 'labels') throw new StatusError(grpc.status.INVALID_ARGUMENT, `Unsupported update_mask path: ${field}`);
        validateLabels(body.labels ?? {});
        secret.labels = { ...body.labels };
      }
      return secretResource(secret);
    },
    AddSecretVersion(request, principal) {
      const parent = String(request['parent']);
      authorize(principal, 'secretmanager.versions.add', parent);
      const secret = secretOrFail(parseSecret(parent));
      const payload = (request['payload'] ?? {}) as { data?: Buffer; dataCrc32c?: string; _dataCrc32c?: string };
      const data = Buffer.from(payload.data ?? []);
      if (data.length > 65_536) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'Secret payload data must be no larger than 64KiB.');
      const crc = referenceCrc32c(data);
      if (payload._dataCrc32c === 'dataCrc32c' && Number(payload.dataCrc32c) !== crc) {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, 'Checksum mismatch: the data_crc32c does not match the payload data.');
      }
      const version: Version = { number: secret.versions.length + 1, state: 'ENABLED', createTime: new Date(), data, crc32c: crc };
      secret.versions.push(version);
      return versionResource(secret, version);
    },
    DeleteSecret(request, principal) {
      const name = String(request['name']);
      authorize(principal, 'secretmanager.secrets.delete', name);
      secretOrFail(parseSecret(name));
      secrets.delete(parseSecret(name));
      return {};
    },
    DisableSecretVersion: (request, principal) => changeState(request, principal, 'disable', 'DISABLED'),
    EnableSecretVersion: (request, principal) => changeState(request, principal, 'enable', 'ENABLED'),
    DestroySecretVersion: (request, principal) => changeState(request, principal, 'destroy', 'DESTROYED'),
  };

  function changeState(request: Record<string, unknown>, principal: string, verb: string, state: Version['state']) {
    const name = String(request['name']);
    authorize(principal, `secretmanager.versions.${verb}`, name);
    const { secret: id, version: versionName } = parseVersion(name);
    const { secret, version } = versionOrFail(id, versionName);
    if (version.state === 'DESTROYED') {
      throw new StatusError(
        grpc.status.FAILED_PRECONDITION,
        `Secret Version [projects/${projectNumber}/secrets/${id}/versions/${version.number}] is in DESTROYED state.`,
      );
    }
    version.state = state;
    if (state === 'DESTROYED') {
      version.destroyTime = new Date();
      version.data = Buffer.alloc(0);
    }
    return versionResource(secret, version);
  }

  const Service = loadService();
  const server = new grpc.Server();
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const rpc of Object.keys(Service.service)) {
    const handler = handlers[rpc];
    implementation[rpc] = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      let principal: string | undefined;
      try {
        principal = principalOf(call);
        calls.push({ method: rpc, principal });
        if (faults.apiDisabled) {
          throw new StatusError(
            grpc.status.PERMISSION_DENIED,
            `Secret Manager API has not been used in project ${projectNumber} before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/secretmanager.googleapis.com/overview?project=${projectNumber} then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.`,
          );
        }
        if (rpc === 'AccessSecretVersion' && throttle.left > 0) {
          throttle.left -= 1;
          throttle.given += 1;
          const message = `Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project' of service 'secretmanager.googleapis.com' for consumer 'project_number:${projectNumber}'.`;
          throw new StatusError(grpc.status.RESOURCE_EXHAUSTED, message, quotaStatusDetails(message, projectNumber, throttle.retryDelayMs));
        }
        if (!handler) throw new StatusError(grpc.status.UNIMPLEMENTED, `Method ${rpc} is not implemented by this fake.`);
        callback(null, handler(call.request, principal));
      } catch (error) {
        if (principal === undefined) calls.push({ method: rpc });
        if (error instanceof StatusError)
          callback({ code: error.code, details: error.details, ...(error.metadata ? { metadata: error.metadata } : {}) });
        else callback({ code: grpc.status.INTERNAL, details: String(error) });
      }
    };
  }
  server.addService(Service.service, implementation);
  const credentials = grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(certs.key), cert_chain: Buffer.from(certs.cert) }],
    false,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );

  let rawClient: grpc.Client | undefined;
  return {
    port,
    tokenUri,
    caFile: certs.caFile,
    projectId,
    projectNumber,
    calls,
    faults,
    throttleReads(count, retryDelayMs) {
      throttle.left = count;
      throttle.retryDelayMs = retryDelayMs;
    },
    throttledReads: () => throttle.given,
    issueToken,
    writeAdcFile(target, user) {
      fs.mkdirSync(target, { recursive: true });
      const file = path.join(target, 'application_default_credentials.json');
      fs.writeFileSync(
        file,
        JSON.stringify(
          {
            account: '',
            client_id: GCLOUD_CLIENT.id,
            client_secret: GCLOUD_CLIENT.secret,
            refresh_token: user.refreshToken,
            type: 'authorized_user',
            universe_domain: 'googleapis.com',
            token_uri: tokenUri,
          },
          null,
          2,
        ),
        { mode: 0o600 },
      );
      return file;
    },
    revokeRefreshToken: (token) => void refreshTokens.delete(token),
    rawCall(method, request, accessToken) {
      rawClient ??= new Service(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(certs.ca)));
      const metadata = new grpc.Metadata();
      if (accessToken !== undefined) metadata.set('authorization', `Bearer ${accessToken}`);
      const name = method.charAt(0).toLowerCase() + method.slice(1);
      return new Promise((resolve, reject) => {
        (
          rawClient as unknown as Record<
            string,
            (request: object, metadata: grpc.Metadata, callback: (error: Error | null, response: unknown) => void) => void
          >
        )[name]!(request, metadata, (error, response) => (error ? reject(error) : resolve(response as never)));
      });
    },
    async stop() {
      rawClient?.close();
      server.forceShutdown();
      oauth.closeAllConnections();
      await new Promise<void>((resolve) => oauth.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };

  function secretFilter(filter: string): (secret: Secret) => boolean {
    const terms = filter.trim() ? filter.trim().split(/\s+(?:AND\s+)?/) : [];
    const tests = terms.map((term) => {
      const name = /^name:(?:"([^"]*)"|([^\s"]+))$/.exec(term);
      if (name) {
        const value = name[1] ?? name[2]!;
        return (secret: Secret) => secret.id.includes(value);
      }
      const label = /^labels\.([a-z][a-z0-9_-]*)(?:=(?:"([^"]*)"|([^\s"]*))|:\*)$/.exec(term);
      if (label) {
        const [, key, quoted, bare] = label;
        const expected = quoted ?? bare;
        return (secret: Secret) => (expected === undefined ? key! in secret.labels : secret.labels[key!] === expected);
      }
      throw new StatusError(grpc.status.INVALID_ARGUMENT, `Invalid filter: ${filter}`);
    });
    return (secret) => tests.every((test) => test(secret));
  }
}

/** An id_token as Google's token endpoint returns it with openid scope (unsigned here: only the claims matter to clients). */
function idToken(email: string): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: 'RS256', typ: 'JWT' })}.${encode({ iss: 'https://accounts.google.com', aud: GCLOUD_CLIENT.id, sub: String(now), email, email_verified: true, iat: now, exp: now + 3600 })}.${Buffer.from('test-signature').toString('base64url')}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
