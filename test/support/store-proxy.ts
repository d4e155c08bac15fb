// An HTTP proxy in front of moto that counts Secrets Manager calls by their X-Amz-Target and
// can answer the next ones as AWS does when it throttles, or hold them (a slow store).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StoreProxy {
  url: string;
  /** Calls seen per operation ("GetSecretValue"), throttled ones included. */
  count(operation: string): number;
  /** Calls of `operation` answered with a ThrottlingException so far. */
  throttled(operation: string): number;
  /** The next `n` calls of `operation` get AWS's 400 ThrottlingException. */
  throttle(operation: string, n: number): void;
  /** Every call waits this long before it is forwarded. */
  delay(ms: number): void;
  /**
   * The next call of `operation` is held `ms` and then forwarded even when the client has given up
   * meanwhile: the store applies a write whose answer the client never saw.
   */
  holdNext(operation: string, ms: number): void;
  stop(): Promise<void>;
}

export async function startStoreProxy(targetPort: number): Promise<StoreProxy> {
  const counts = new Map<string, number>();
  const throttles = new Map<string, number>();
  const throttled = new Map<string, number>();
  let delayMs = 0;
  const holds = new Map<string, number>();
  const server = http.createServer((request, response) => {
    const target = String(request.headers['x-amz-target'] ?? '');
    const operation = target.split('.').at(-1) ?? '';
    counts.set(operation, (counts.get(operation) ?? 0) + 1);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const left = throttles.get(operation) ?? 0;
      if (left > 0) {
        throttles.set(operation, left - 1);
        throttled.set(operation, (throttled.get(operation) ?? 0) + 1);
        response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ThrottlingException' });
        return void response.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
      }
      const forward = () => {
        const upstream = http.request(
          { host: '127.0.0.1', port: targetPort, method: request.method, path: request.url, headers: request.headers },
          (answer) => {
            response.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(response);
          },
        );
        upstream.on('error', () => response.destroy());
        upstream.end(Buffer.concat(chunks));
      };
      const hold = holds.get(operation);
      if (hold !== undefined) holds.delete(operation);
      const wait = (hold ?? 0) + delayMs;
      if (wait > 0) setTimeout(forward, wait);
      else forward();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    count: (operation) => counts.get(operation) ?? 0,
    throttled: (operation) => throttled.get(operation) ?? 0,
    throttle: (operation, n) => void throttles.set(operation, n),
    delay: (ms) => void (delayMs = ms),
    holdNext: (operation, ms) => void holds.set(operation, ms),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
