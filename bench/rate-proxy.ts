// A store in a far region with a write quota: an HTTP proxy in front of moto that adds a fixed
// latency to every call and answers AWS's ThrottlingException (HTTP 400, no Retry-After, as
// Secrets Manager does) to any call above `perSecond` in a sliding one-second window. It counts
// what a polite client must keep at zero: calls refused after the client was told of the first
// refusal (the calls it had already sent then could not know).
// With several moto servers (shards), each secret lives on one, chosen by its name; ListSecrets
// pages through them in turn (the proxy prefixes NextToken with the shard), so the client sees one store.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RateProxy {
  url: string;
  /** throttledAfterFirst: refusals after the first; afterTold: those of calls that came after the first refusal was answered (not already in flight then). */
  stats(): {
    calls: number;
    accepted: number;
    throttled: number;
    throttledAfterFirst: number;
    afterTold: number;
    refusedAtSeconds: number[];
  };
  reset(): void;
  setRate(perSecond: number | undefined): void;
  stop(): Promise<void>;
}

/** FNV-1a: the shard a secret name lives on. */
function shardOf(name: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < name.length; index++) hash = Math.imul(hash ^ name.charCodeAt(index), 0x01000193);
  return (hash >>> 0) % shards;
}

export async function startRateProxy(targetPorts: number[], options: { latencyMs: number; perSecond?: number }): Promise<RateProxy> {
  let perSecond = options.perSecond;
  const window: number[] = [];
  let calls = 0;
  let accepted = 0;
  let throttled = 0;
  let throttleTimes: number[] = [];
  let firstToldAt: number | undefined;
  let afterTold = 0;
  let since = Date.now();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  function forward(request: http.IncomingMessage, response: http.ServerResponse, body: Buffer) {
    const operation =
      String(request.headers['x-amz-target'] ?? '')
        .split('.')
        .at(-1) ?? '';
    let parsed: Record<string, unknown> = {};
    if (operation) {
      try {
        parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        parsed = {};
      }
    }
    const pipeFrom = (port: number, sent: Buffer, rewrite?: (answer: Record<string, unknown>) => void) => {
      const headers = { ...request.headers, 'content-length': String(sent.length) };
      const upstream = http.request({ host: '127.0.0.1', port, method: request.method, path: request.url, headers, agent }, (answer) => {
        if (!rewrite || answer.statusCode !== 200) {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (chunk: Buffer) => chunks.push(chunk));
        answer.on('end', () => {
          const page = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          rewrite(page);
          const text = Buffer.from(JSON.stringify(page));
          response.writeHead(200, { ...answer.headers, 'content-length': String(text.length) });
          response.end(text);
        });
      });
      upstream.on('error', () => response.destroy());
      upstream.end(sent);
    };
    if (targetPorts.length === 1) return pipeFrom(targetPorts[0]!, body);
    if (operation === 'ListSecrets') {
      // NextToken "<shard>|<that shard's token>": one shard's pages, then the next shard's.
      const token = typeof parsed['NextToken'] === 'string' ? parsed['NextToken'] : '0|';
      const [shardText, inner = ''] = token.split(/\|(.*)/s);
      const shard = Number(shardText);
      const sent = Buffer.from(JSON.stringify({ ...parsed, NextToken: inner || undefined }));
      return pipeFrom(targetPorts[shard]!, sent, (page) => {
        if (typeof page['NextToken'] === 'string') page['NextToken'] = `${shard}|${page['NextToken']}`;
        else if (shard + 1 < targetPorts.length) page['NextToken'] = `${shard + 1}|`;
        else delete page['NextToken'];
      });
    }
    const name = typeof parsed['SecretId'] === 'string' ? parsed['SecretId'] : typeof parsed['Name'] === 'string' ? parsed['Name'] : '';
    pipeFrom(targetPorts[name ? shardOf(name, targetPorts.length) : 0]!, body);
  }

  const server = http.createServer((request, response) => {
    calls++;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const now = Date.now();
      while (window.length && now - window[0]! >= 1_000) window.shift();
      // Secrets Manager's quota; STS (the admin's GetCallerIdentity, its own service and quota) passes.
      const secretsManager = String(request.headers['x-amz-target'] ?? '').startsWith('secretsmanager.');
      if (secretsManager && perSecond !== undefined && window.length >= perSecond) {
        throttled++;
        throttleTimes.push(now);
        if (firstToldAt !== undefined && now > firstToldAt) afterTold++;
        // The refusal takes the same round trip as an answer.
        setTimeout(() => {
          firstToldAt ??= Date.now();
          response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' });
          response.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
        }, options.latencyMs);
        return;
      }
      if (secretsManager) window.push(now);
      accepted++;
      const body = Buffer.concat(chunks);
      setTimeout(() => forward(request, response, body), options.latencyMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({
      calls,
      accepted,
      throttled,
      throttledAfterFirst: Math.max(0, throttled - 1),
      afterTold,
      // When each refusal came, from the last reset: one burst of calls already in flight, or refusals all along.
      refusedAtSeconds: throttleTimes.slice(0, 50).map((at) => Math.round((at - since) / 100) / 10),
    }),
    reset: () => {
      calls = accepted = throttled = afterTold = 0;
      throttleTimes = [];
      firstToldAt = undefined;
      since = Date.now();
    },
    setRate: (rate) => {
      perSecond = rate;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
