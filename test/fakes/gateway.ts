// A local LLM gateway that answers as the Anthropic Messages API does (JSON and SSE), accepts
// only the keys it is told to, logs every request, and can be switched into the failures a
// gateway rollout meets (rejected key, unrouted model, buffered streaming, redirect, WAF, down).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface GatewayRequest {
  at: number;
  method: string;
  path: string;
  xApiKey: string | undefined;
  bearer: string | undefined;
  status: number;
  model?: string;
  stream?: boolean;
}

type GatewayFault =
  | 'none'
  | 'buffered-stream' // holds every SSE event, then sends them all at once
  | 'redirect' // 307 to another origin for every request
  | 'waf' // 403 with an HTML body, as a web application firewall answers
  | 'server-error'; // 500 on everything

export interface FakeGateway {
  url: string;
  port: number;
  /** Requests in arrival order. */
  log: GatewayRequest[];
  /** Only these keys are accepted (x-api-key or Bearer); others get 401. */
  acceptKeys(keys: string[]): void;
  /** Models that are routed; a request for another gets 404. Default: any. */
  routeModels(models: string[] | 'any'): void;
  setFault(fault: GatewayFault): void;
  stop(): Promise<void>;
}

const ANTHROPIC_ERROR = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message } });

export async function startFakeGateway(options: { keys?: string[]; port?: number } = {}): Promise<FakeGateway> {
  let accepted = new Set(options.keys ?? []);
  let routed: Set<string> | 'any' = 'any';
  let fault: GatewayFault = 'none';
  const log: GatewayRequest[] = [];

  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://gateway');
      const xApiKey = header(request, 'x-api-key');
      const authorization = header(request, 'authorization');
      const bearer = authorization?.startsWith('Bearer ') ? authorization.slice(7) : undefined;
      const entry: GatewayRequest = { at: Date.now(), method: request.method ?? 'GET', path: url.pathname, xApiKey, bearer, status: 0 };
      log.push(entry);
      const send = (status: number, text: string, type = 'application/json', extra: Record<string, string> = {}) => {
        entry.status = status;
        response.writeHead(status, { 'content-type': type, 'request-id': `req_test_${log.length}`, ...extra });
        response.end(text);
      };

      if (fault === 'redirect') return send(307, '', 'text/plain', { location: `https://login.example.invalid${url.pathname}` });
      if (fault === 'waf') return send(403, '<html><body><h1>403 Forbidden</h1>Request blocked by WAF</body></html>', 'text/html');
      if (fault === 'server-error') return send(500, ANTHROPIC_ERROR('api_error', 'Internal server error'));

      // Claude Code's connectivity probe (HEAD /) carries no key.
      if (url.pathname === '/' && (request.method === 'HEAD' || request.method === 'GET')) return send(200, '', 'text/plain');

      const key = xApiKey ?? bearer;
      if (!key || !accepted.has(key)) {
        return send(401, ANTHROPIC_ERROR('authentication_error', 'invalid x-api-key'));
      }

      if (request.method === 'GET' && url.pathname === '/v1/models') {
        const models = routed === 'any' ? ['claude-sonnet-4-5', 'claude-haiku-4-5'] : [...routed];
        return send(
          200,
          JSON.stringify({
            data: models.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' })),
            has_more: false,
            first_id: models[0] ?? null,
            last_id: models.at(-1) ?? null,
          }),
        );
      }
      if (request.method === 'POST' && url.pathname === '/v1/messages/count_tokens') {
        return send(200, JSON.stringify({ input_tokens: 12 }));
      }
      if (request.method === 'POST' && url.pathname === '/v1/messages') {
        let parsed: { model?: string; stream?: boolean } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          return send(400, ANTHROPIC_ERROR('invalid_request_error', 'body is not JSON'));
        }
        const model = parsed.model ?? '';
        entry.model = model;
        entry.stream = Boolean(parsed.stream);
        if (routed !== 'any' && !routed.has(model)) {
          return send(404, ANTHROPIC_ERROR('not_found_error', `model: ${model}`));
        }
        if (!parsed.stream) {
          return send(200, JSON.stringify(message(model, 'pong')));
        }
        entry.status = 200;
        response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        streamMessage(response, model, fault === 'buffered-stream');
        return;
      }
      send(404, ANTHROPIC_ERROR('not_found_error', `no route for ${request.method} ${url.pathname}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    acceptKeys: (keys) => void (accepted = new Set(keys)),
    routeModels: (models) => void (routed = models === 'any' ? 'any' : new Set(models)),
    setFault: (next) => void (fault = next),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function header(request: http.IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function message(model: string, text: string) {
  return {
    id: 'msg_test_01',
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 2 },
  };
}

/** The Messages API's SSE sequence; each event 60 ms apart unless the gateway buffers. */
function streamMessage(response: http.ServerResponse, model: string, buffered: boolean): void {
  const start = { ...message(model, ''), content: [], stop_reason: null, usage: { input_tokens: 12, output_tokens: 1 } };
  const events: [string, unknown][] = [
    ['message_start', { type: 'message_start', message: start }],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['ping', { type: 'ping' }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'po' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'ng' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 2 } }],
    ['message_stop', { type: 'message_stop' }],
  ];
  const frames = events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  if (buffered) {
    setTimeout(() => response.end(frames.join('')), 60 * frames.length);
    return;
  }
  let index = 0;
  const next = () => {
    if (response.destroyed) return;
    if (index === frames.length) return void response.end();
    response.write(frames[index++]);
    setTimeout(next, 60);
  };
  next();
}
