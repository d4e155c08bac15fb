// A LiteLLM proxy as its docs describe the key API: master-key auth (Authorization: Bearer),
// POST /key/generate (user_id, key_alias unique, duration "30s|30m|30h|30d", models, metadata),
// POST /key/regenerate {key, grace_period} (the old key keeps working until the grace period
// ends, then only the new one), POST /key/update {key, duration} (the key now expires that long
// from now), POST /key/delete {keys} (keys or their hashed tokens), GET /key/info?key=,
// GET /key/list?user_id=&return_full_object=true&page=&size= (full objects carry `token`, the SHA-256 of the
// key; paged). Errors in LiteLLM's {"error": {message, type, param, code}} shape; above a rate set with
// `limitRate`, 429 with Retry-After, as LiteLLM answers a rate-limited caller. Everything else is the Anthropic-API fake
// gateway (test/fakes/gateway.ts), which accepts exactly the keys valid at that moment.
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startFakeGateway, type FakeGateway } from './gateway.ts';

interface IssuedKey {
  key: string;
  userId: string | null;
  alias: string | null;
  /** Unix ms; null: never. */
  expires: number | null;
  models: string[];
  /** Set when the key was regenerated with a grace period: accepted until then. */
  graceUntil?: number;
  /** Regenerated without grace, or deleted. */
  revoked: boolean;
  metadata: Record<string, unknown>;
}

interface AdminCall {
  route: string;
  authorized: boolean;
  status: number;
  body: Record<string, unknown>;
}

export interface FakeLiteLlm {
  url: string;
  masterKey: string;
  /** The Anthropic-API side: its request log shows which key each message carried. */
  gateway: FakeGateway;
  keys: IssuedKey[];
  adminCalls: AdminCall[];
  /** True when a message sent with `key` would be accepted now. */
  accepts(key: string): boolean;
  /** Makes the next call to `route` fail with this HTTP status. */
  failNext(route: string, status: number): void;
  /**
   * The next call to `route` is carried out (a key minted, deleted, …) and then its answer is lost:
   * sent `delayMs` late, replaced by an HTTP 5xx, or the connection reset.
   */
  failAfterCommit(route: string, fault: { delayMs: number } | { status: number } | 'reset'): void;
  /** The next call to `route` waits `ms` before the gateway acts on it (a slow gateway: nothing done yet). */
  holdNext(route: string, ms: number): void;
  /** Calls to `route` that have arrived so far, held ones included. */
  received(route: string): number;
  /** Key API calls above `perSecond` (in any one-second window) are answered 429 with Retry-After; undefined lifts it. */
  limitRate(perSecond: number | undefined, retryAfterSeconds?: number): void;
  /** Calls answered 429 so far. */
  throttled(): number;
  stop(): Promise<void>;
}

/** LiteLLM's duration strings: a number and one of s, m, h, d. */
function durationMs(text: string): number | undefined {
  const match = /^(\d+)([smhd])$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

const liteLlmError = (message: string, type: string, code: number) =>
  JSON.stringify({ error: { message, type, param: 'None', code: String(code) } });

export async function startFakeLiteLlm(options: { masterKey?: string; now?: () => number } = {}): Promise<FakeLiteLlm> {
  const masterKey = options.masterKey ?? `sk-test-master-${randomBytes(6).toString('hex')}`;
  const now = options.now ?? Date.now;
  const gateway = await startFakeGateway();
  const keys: IssuedKey[] = [];
  const adminCalls: AdminCall[] = [];
  const failures = new Map<string, number>();
  const afterCommit = new Map<string, { delayMs: number } | { status: number } | 'reset'>();
  const holds = new Map<string, number>();
  const arrivals = new Map<string, number>();

  const valid = (entry: IssuedKey, at: number) =>
    (entry.expires === null || at < entry.expires) && (entry.graceUntil !== undefined ? at < entry.graceUntil : !entry.revoked);
  const accepts = (key: string) => keys.some((entry) => entry.key === key && valid(entry, now()));
  const issue = (body: Record<string, unknown>): IssuedKey => ({
    key: `sk-test-${randomBytes(12).toString('hex')}`,
    userId: typeof body['user_id'] === 'string' ? body['user_id'] : null,
    alias: typeof body['key_alias'] === 'string' ? body['key_alias'] : null,
    expires: typeof body['duration'] === 'string' ? now() + durationMs(body['duration'])! : null,
    models: Array.isArray(body['models']) ? (body['models'] as string[]) : [],
    revoked: false,
    metadata: body['metadata'] && typeof body['metadata'] === 'object' ? (body['metadata'] as Record<string, unknown>) : {},
  });
  const tokenOf = (key: string) => createHash('sha256').update(key).digest('hex');
  let rate: { perSecond: number; retryAfter: number } | undefined;
  const recent: number[] = [];
  let throttledCount = 0;
  const describe = (entry: IssuedKey) => ({
    key: entry.key,
    key_alias: entry.alias,
    user_id: entry.userId,
    expires: entry.expires === null ? null : new Date(entry.expires).toISOString(),
    models: entry.models,
    token_id: `hashed-${entry.key.slice(-8)}`,
    metadata: entry.metadata,
  });

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://litellm');
    if (!url.pathname.startsWith('/key/')) return forward(request, response);
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => {
      arrivals.set(url.pathname, (arrivals.get(url.pathname) ?? 0) + 1);
      const hold = holds.get(url.pathname);
      if (hold === undefined) return handle();
      holds.delete(url.pathname);
      setTimeout(handle, hold);
    });
    const handle = () => {
      let body: Record<string, unknown> = {};
      try {
        body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      } catch {
        /* answered below as a bad request */
      }
      const authorized = request.headers['authorization'] === `Bearer ${masterKey}`;
      const call: AdminCall = { route: url.pathname, authorized, status: 0, body };
      adminCalls.push(call);
      const lost = authorized ? afterCommit.get(url.pathname) : undefined;
      if (lost) afterCommit.delete(url.pathname);
      const answer = (status: number, payload: string) => {
        call.status = status;
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(payload);
      };
      const send = (status: number, payload: string) => {
        if (!lost) return answer(status, payload);
        if (lost === 'reset') return void response.socket?.destroy();
        if ('status' in lost) return answer(lost.status, liteLlmError('Internal Server Error', 'internal_server_error', lost.status));
        setTimeout(() => answer(status, payload), lost.delayMs);
      };
      if (!authorized)
        return send(
          401,
          liteLlmError('Authentication Error, Invalid proxy server token passed. Received API Key = sk-...', 'auth_error', 401),
        );
      if (rate) {
        const at = Date.now();
        while (recent.length && at - recent[0]! >= 1_000) recent.shift();
        if (recent.length >= rate.perSecond) {
          throttledCount++;
          call.status = 429;
          response.writeHead(429, { 'content-type': 'application/json', 'retry-after': String(rate.retryAfter) });
          return response.end(liteLlmError('Max parallel request limit reached. Hit limit for api_key.', 'throttling_error', 429));
        }
        recent.push(at);
      }
      const failure = failures.get(url.pathname);
      if (failure) {
        failures.delete(url.pathname);
        return send(failure, liteLlmError('Internal Server Error', 'internal_server_error', failure));
      }
      if (request.method === 'POST' && url.pathname === '/key/generate') {
        if (body['duration'] !== undefined && (typeof body['duration'] !== 'string' || durationMs(body['duration']) === undefined)) {
          return send(400, liteLlmError(`Invalid duration: ${String(body['duration'])}`, 'bad_request_error', 400));
        }
        if (typeof body['key_alias'] === 'string' && keys.some((entry) => entry.alias === body['key_alias'] && !entry.revoked)) {
          return send(
            400,
            liteLlmError(
              `Unique key aliases across all keys are required. Key alias=${body['key_alias']} already exists.`,
              'bad_request_error',
              400,
            ),
          );
        }
        const entry = issue(body);
        keys.push(entry);
        return send(200, JSON.stringify(describe(entry)));
      }
      const regenerate = /^\/key\/(?:(.+)\/)?regenerate$/.exec(url.pathname);
      if (request.method === 'POST' && regenerate) {
        const oldKey = regenerate[1] ? decodeURIComponent(regenerate[1]) : body['key'];
        const old = keys.find((entry) => entry.key === oldKey && valid(entry, now()));
        if (!old) return send(404, liteLlmError('Key not found', 'not_found_error', 404));
        const grace = typeof body['grace_period'] === 'string' ? durationMs(body['grace_period']) : undefined;
        if (body['grace_period'] !== undefined && grace === undefined)
          return send(400, liteLlmError(`Invalid grace_period: ${String(body['grace_period'])}`, 'bad_request_error', 400));
        const entry = { ...issue({ ...body, key_alias: old.alias, user_id: body['user_id'] ?? old.userId }), models: old.models };
        if (body['duration'] === undefined) entry.expires = old.expires;
        old.revoked = true;
        if (grace) old.graceUntil = now() + grace;
        keys.push(entry);
        return send(200, JSON.stringify(describe(entry)));
      }
      if (request.method === 'POST' && url.pathname === '/key/update') {
        const entry = keys.find(
          (candidate) => (candidate.key === body['key'] || tokenOf(candidate.key) === body['key']) && valid(candidate, now()),
        );
        if (!entry) return send(404, liteLlmError('Key not found', 'not_found_error', 404));
        if (body['duration'] !== undefined) {
          const ms = typeof body['duration'] === 'string' ? durationMs(body['duration']) : undefined;
          if (ms === undefined) return send(400, liteLlmError(`Invalid duration: ${String(body['duration'])}`, 'bad_request_error', 400));
          entry.expires = now() + ms;
        }
        return send(200, JSON.stringify(describe(entry)));
      }
      if (request.method === 'GET' && url.pathname === '/key/list') {
        const user = url.searchParams.get('user_id');
        const found = keys.filter((entry) => !entry.revoked && (user === null || entry.userId === user));
        const full = url.searchParams.get('return_full_object') === 'true';
        // Paged as LiteLLM pages it: `page` from 1, `size` per page (its default 10).
        const size = Math.max(1, Number(url.searchParams.get('size') ?? 10));
        const page = Math.max(1, Number(url.searchParams.get('page') ?? 1));
        const shown = found.slice((page - 1) * size, page * size);
        return send(
          200,
          JSON.stringify({
            keys: shown.map((entry) => (full ? { ...describe(entry), key: undefined, token: tokenOf(entry.key) } : tokenOf(entry.key))),
            total_count: found.length,
            current_page: page,
            total_pages: Math.max(1, Math.ceil(found.length / size)),
          }),
        );
      }
      if (request.method === 'POST' && url.pathname === '/key/delete') {
        const wanted = Array.isArray(body['keys']) ? (body['keys'] as string[]) : [];
        const found = keys.filter((entry) => wanted.includes(entry.key) || wanted.includes(tokenOf(entry.key)));
        if (found.length !== wanted.length)
          return send(404, liteLlmError('Failed to delete all keys. Keys not found', 'not_found_error', 404));
        for (const entry of found) {
          entry.revoked = true;
          delete entry.graceUntil;
        }
        return send(200, JSON.stringify({ deleted_keys: wanted }));
      }
      if (request.method === 'GET' && url.pathname === '/key/info') {
        const entry = keys.find((candidate) => candidate.key === url.searchParams.get('key'));
        if (!entry) return send(404, liteLlmError('Key not found', 'not_found_error', 404));
        return send(200, JSON.stringify({ key: entry.key, info: describe(entry) }));
      }
      send(404, liteLlmError(`Not Found: ${request.method} ${url.pathname}`, 'not_found_error', 404));
    };
  });

  /** The model API: the gateway fake, told which keys are valid at this instant. */
  function forward(request: http.IncomingMessage, response: http.ServerResponse): void {
    gateway.acceptKeys(keys.filter((entry) => valid(entry, now())).map((entry) => entry.key));
    const upstream = http.request(
      { host: '127.0.0.1', port: gateway.port, method: request.method, path: request.url, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    masterKey,
    gateway,
    keys,
    adminCalls,
    accepts,
    failNext: (route, status) => void failures.set(route, status),
    failAfterCommit: (route, fault) => void afterCommit.set(route, fault),
    holdNext: (route, ms) => void holds.set(route, ms),
    received: (route) => arrivals.get(route) ?? 0,
    limitRate: (perSecond, retryAfterSeconds = 1) =>
      void (rate = perSecond === undefined ? undefined : { perSecond, retryAfter: retryAfterSeconds }),
    throttled: () => throttledCount,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await gateway.stop();
    },
  };
}
