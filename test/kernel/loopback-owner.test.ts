// Who listens on a loopback port, read from /proc/net/tcp and tcp6: the rows the kernel prints,
// which listeners a connection to a host would reach, and the check every sender calls.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/kernel/errors.ts';
import { checkLoopbackOwner, listenerUids, parseListeners, type Listener } from '../../src/kernel/loopback-owner.ts';
import { createLiteLlmIssuer } from '../../src/gateway/litellm.ts';
import { listenAsOtherUser, type OtherListener } from '../support/other-listener.ts';

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
// Rows as a little-endian x86 kernel prints them.
const TCP =
  HEADER +
  '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1001 1 0 100 0 0 10 0\n' +
  '   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n' +
  '   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 1003 1 0 100 0 0 10 0\n' +
  '   3: 0200007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1004 1 0 100 0 0 10 0\n';
const TCP6 =
  HEADER +
  '   0: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2001 1 0 100 0 0 10 0\n' +
  '   1: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 2002 1 0 100 0 0 10 0\n' +
  '   2: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  4242        0 2003 1 0 100 0 0 10 0\n';
const listeners = (): Listener[] => [...parseListeners(TCP, true), ...parseListeners(TCP6, true)];

describe('parseListeners', () => {
  it('keeps LISTEN rows only, with the address in network order, the port and the uid', () => {
    const rows = parseListeners(TCP, true).map((row) => [row.address.join('.'), row.port, row.uid]);
    expect(rows).toEqual([
      ['127.0.0.1', 8080, 65534],
      ['0.0.0.0', 80, 0],
      ['127.0.0.2', 8080, 1000],
    ]);
    expect(parseListeners(TCP6, true).map((row) => row.address.toString('hex'))).toEqual([
      '00000000000000000000000000000001',
      '00000000000000000000ffff7f000001',
      '00000000000000000000000000000000',
    ]);
  });

  it('reads a big-endian kernel too', () => {
    const row = '   0: 7F000001:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 1 1 0 100 0 0 10 0\n';
    expect(parseListeners(HEADER + row, false)[0]!.address.join('.')).toBe('127.0.0.1');
  });
});

describe('listenerUids: the sockets a connection to host:port would reach', () => {
  it('the exact address, the IPv4 wildcard, the v4-mapped form and the IPv6 wildcard; not another 127.x', () => {
    expect(listenerUids('127.0.0.1', 8080, listeners())).toEqual([65534]);
    expect(listenerUids('127.0.0.2', 8080, listeners())).toEqual([1000]);
    expect(listenerUids('127.0.0.1', 80, listeners())).toEqual([0]);
    expect(listenerUids('127.0.0.1', 8082, listeners())).toEqual([65534]);
    expect(listenerUids('127.0.0.1', 8083, listeners())).toEqual([4242]);
    expect(listenerUids('[::1]', 8081, listeners())).toEqual([1000]);
    expect(listenerUids('localhost', 8081, listeners())).toEqual([1000]);
    expect(listenerUids('127.0.0.1', 9999, listeners())).toEqual([]);
  });
});

describe('checkLoopbackOwner', () => {
  const send = { what: 'the gateway', carries: 'your key' };
  it("refuses another user's port with a ConfigError (exit 3) that names the owner and how to see who listens", () => {
    const refusal = (() => {
      try {
        checkLoopbackOwner('http://127.0.0.1:8080/v1', send, listeners);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as ConfigError).exitCode).toBe(3);
    expect((refusal as ConfigError).line()).toBe(
      "the gateway http://127.0.0.1:8080 is a port on this machine that another local user listens on (uid 65534 (nobody), not you): keybroker did not send your key there: stop that listener or start your own server on a free port and point the gateway at it; 'ss -ltnpe sport = :8080' shows who listens",
    );
  });

  it("passes root's port (Docker's proxy), a port nobody listens on, https, and hosts off this machine", () => {
    expect(() => checkLoopbackOwner('http://127.0.0.1:80', send, listeners)).not.toThrow();
    expect(() => checkLoopbackOwner('http://127.0.0.1:9999', send, listeners)).not.toThrow();
    expect(() => checkLoopbackOwner('https://127.0.0.1:8080', send, listeners)).not.toThrow();
    expect(() => checkLoopbackOwner('http://gateway.example.com:8080', send, listeners)).not.toThrow();
  });

  it('fails closed when the listeners cannot be read', () => {
    const unreadable = () => {
      throw Object.assign(new Error('no'), { code: 'ENOENT' });
    };
    expect(() => checkLoopbackOwner('http://127.0.0.1:8080', send, unreadable)).toThrow(
      /cannot tell who listens on 127.0.0.1:8080 \(ENOENT\): keybroker did not send your key to the gateway/,
    );
  });
});

describe('on this machine (/proc/net/tcp)', () => {
  let other: OtherListener;
  let own: http.Server;
  let ownPort: number;
  beforeAll(async () => {
    other = await listenAsOtherUser();
    own = http.createServer((_request, response) => response.end('{}'));
    await new Promise<void>((resolve) => own.listen(0, '127.0.0.1', resolve));
    ownPort = (own.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await other?.stop();
    await new Promise((resolve) => own?.close(resolve));
  });

  it("finds uid 65534's listener and ours", () => {
    expect(() => checkLoopbackOwner(other.url, { what: 'x', carries: 'y' })).toThrow(/uid 65534 \(nobody\), not you/);
    expect(() => checkLoopbackOwner(`http://127.0.0.1:${ownPort}`, { what: 'x', carries: 'y' })).not.toThrow();
    expect(() => checkLoopbackOwner(`http://localhost:${other.port}`, { what: 'x', carries: 'y' })).toThrow(ConfigError);
  });

  it('a port of ours that passes to another user is checked again once a second has passed', async () => {
    const server = http.createServer((_request, response) => response.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    checkLoopbackOwner(`http://127.0.0.1:${port}`, { what: 'x', carries: 'y' });
    await new Promise((resolve) => server.close(resolve));
    const taken = await listenAsOtherUser('127.0.0.1', port);
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(() => checkLoopbackOwner(`http://127.0.0.1:${port}`, { what: 'x', carries: 'y' })).toThrow(/uid 65534 \(nobody\), not you/);
    } finally {
      await taken.stop();
    }
  });

  it("keyIssuer.url on another user's port: the master key is never fetched there", async () => {
    const sent: string[] = [];
    const issuer = createLiteLlmIssuer(
      { type: 'litellm', url: other.url },
      {
        env: { LITELLM_MASTER_KEY: 'sk-test-master' },
        timeoutMs: 2_000,
        fetch: (async (url: string) => (sent.push(url), new Response('{}'))) as typeof fetch,
      },
    );
    await expect(issuer.mint('alice')).rejects.toThrow(
      /keyIssuer.url http:\/\/127.0.0.1:\d+ is a port on this machine that another local user listens on \(uid 65534 \(nobody\), not you\): keybroker did not send the gateway's master key there/,
    );
    expect(sent).toEqual([]);
  });
});
