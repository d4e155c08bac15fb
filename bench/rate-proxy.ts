// A store in a far region with a write quota: an HTTP proxy in front of moto that adds a fixed
// latency to every call and answers AWS's ThrottlingException (HTTP 400, no Retry-After, as
// Secrets Manager does) to any call above `perSecond` in a sliding one-second window. It counts
// what a polite client must keep at zero: calls refused after the first refusal.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RateProxy {
  url: string;
  /** throttledAfterFirst: refusals after the first; afterReaction: those more than a second after it (the calls already in flight then are the client's reaction time). */
  stats(): { calls: number; accepted: number; throttled: number; throttledAfterFirst: number; afterReaction: number };
  reset(): void;
  setRate(perSecond: number | undefined): void;
  stop(): Promise<void>;
}

export async function startRateProxy(targetPort: number, options: { latencyMs: number; perSecond?: number }): Promise<RateProxy> {
  let perSecond = options.perSecond;
  const window: number[] = [];
  let calls = 0;
  let accepted = 0;
  let throttled = 0;
  let throttleTimes: number[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const server = http.createServer((request, response) => {
    calls++;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const now = Date.now();
      while (window.length && now - window[0]! >= 1_000) window.shift();
      if (perSecond !== undefined && window.length >= perSecond) {
        throttled++;
        throttleTimes.push(now);
        // The refusal takes the same round trip as an answer.
        setTimeout(() => {
          response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' });
          response.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
        }, options.latencyMs);
        return;
      }
      window.push(now);
      accepted++;
      setTimeout(() => {
        const upstream = http.request({ host: '127.0.0.1', port: targetPort, method: request.method, path: request.url, headers: request.headers, agent }, (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        });
        upstream.on('error', () => response.destroy());
        upstream.end(Buffer.concat(chunks));
      }, options.latencyMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ calls, accepted, throttled, throttledAfterFirst: Math.max(0, throttled - 1), afterReaction: throttleTimes.filter((at) => at - throttleTimes[0]! > 1_000).length }),
    reset: () => {
      calls = accepted = throttled = 0;
      throttleTimes = [];
    },
    setRate: (rate) => void (perSecond = rate),
    stop: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
