// A TCP proxy in front of a test server that can be switched to fail the way networks do.
import net from 'node:net';
import { freePort } from './processes.ts';

type FaultMode =
  | { kind: 'pass' }
  | { kind: 'delay'; ms: number } // every connection waits this long before any byte flows
  | { kind: 'blackhole' } // accepts and never answers
  | { kind: 'reset' }; // accepts and closes at once

export interface FaultProxy {
  port: number;
  url(scheme?: string): string;
  set(mode: FaultMode): void;
  connections(): number;
  stop(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let mode: FaultMode = { kind: 'pass' };
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    count++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const current = mode;
    if (current.kind === 'blackhole') return;
    if (current.kind === 'reset') return void client.destroy();
    const connect = () => {
      if (client.destroyed) return;
      const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    };
    if (current.kind === 'delay') {
      client.pause();
      setTimeout(() => {
        client.resume();
        connect();
      }, current.ms);
    } else connect();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    url: (scheme = 'http') => `${scheme}://127.0.0.1:${port}`,
    set: (next) => void (mode = next),
    connections: () => count,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A port on which nothing listens (the store is down). */
export const closedPort = freePort;
