// Loopback is not a boundary between local users: any of them can listen on a free port of
// 127.0.0.1. Before a credential goes over plain http:// to this machine, the listening socket
// must be the developer's (or root's: Docker's port proxy). Linux only (/proc/net/tcp); macOS
// and Windows have no unprivileged way to ask, so there the check passes (docs/security.md).
import fs from 'node:fs';
import os from 'node:os';
import { ConfigError } from './errors.ts';
import { isLoopbackHost } from './transport.ts';

/** A TCP socket in LISTEN state, as the kernel lists it. */
export interface Listener {
  /** 4 bytes (tcp) or 16 bytes (tcp6), in network order. */
  address: Buffer;
  port: number;
  uid: number;
}

const LISTEN_STATE = '0A';

/**
 * The LISTEN rows of /proc/net/tcp or tcp6. The kernel prints each address as 32-bit words in
 * the machine's byte order, the port in plain hex.
 */
export function parseListeners(table: string, littleEndian = os.endianness() === 'LE'): Listener[] {
  const listeners: Listener[] = [];
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || fields[3] !== LISTEN_STATE) continue;
    const [addressHex, portHex] = fields[1]!.split(':') as [string, string];
    const address = Buffer.from(addressHex, 'hex');
    if (littleEndian) for (let word = 0; word < address.length; word += 4) address.subarray(word, word + 4).reverse();
    listeners.push({ address, port: Number.parseInt(portHex, 16), uid: Number(fields[7]) });
  }
  return listeners;
}

const IPV6_ANY = Buffer.alloc(16);
const IPV6_LOOPBACK = Buffer.from('00000000000000000000000000000001', 'hex');

/** The addresses a listener may hold to receive a connection to `host`: itself, the wildcards, the v4-mapped form. */
function addressesReaching(host: string): Buffer[] {
  const bare = host.toLowerCase().replace(/^\[|\]$/g, '');
  const v4 = (dotted: string) => Buffer.from(dotted.split('.').map(Number));
  const mapped = (dotted: string) => Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), v4(dotted)]);
  const reachingV4 = (dotted: string) => [v4(dotted), v4('0.0.0.0'), mapped(dotted), IPV6_ANY];
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare)) return reachingV4(bare);
  if (bare === '::1' || bare === '0:0:0:0:0:0:0:1') return [IPV6_LOOPBACK, IPV6_ANY];
  // localhost: the resolver may give 127.0.0.1 or ::1.
  return [...reachingV4('127.0.0.1'), IPV6_LOOPBACK];
}

/** True once `text` holds a complete row past the header that is not a listener. */
function pastListeners(text: string): boolean {
  const rows = text.split('\n').slice(1, -1);
  return rows.some((row) => row.trim().split(/\s+/)[3] !== LISTEN_STATE);
}

/**
 * The table up to its last listener: the kernel lists listening sockets first, and reading the
 * rest of /proc/net/tcp (every connection of a busy machine) cost ~19 ms here, the first rows 0.1 ms.
 */
function readListenRows(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.alloc(4_096);
    let text = '';
    for (;;) {
      const read = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) return text;
      text += chunk.toString('latin1', 0, read);
      if (pastListeners(text)) return text;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** What the machine lists: tcp must be there; tcp6 is absent when IPv6 is off. */
function readListeners(): Listener[] {
  const tcp = readListenRows('/proc/net/tcp');
  let tcp6 = '';
  try {
    tcp6 = readListenRows('/proc/net/tcp6');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return [...parseListeners(tcp), ...parseListeners(tcp6)];
}

/** The uids of the sockets that listen where a connection to host:port would land. */
export function listenerUids(host: string, port: number, listeners: Listener[]): number[] {
  const reaching = addressesReaching(host);
  const uids = listeners
    .filter((listener) => listener.port === port && reaching.some((address) => address.equals(listener.address)))
    .map((listener) => listener.uid);
  return [...new Set(uids)];
}

/** "uid 65534 (nobody)", or "uid 1234" when the passwd file does not name it. */
function describeUid(uid: number): string {
  try {
    const entry = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((line) => line.split(':')[2] === String(uid));
    const name = entry?.split(':')[0];
    return name ? `uid ${uid} (${name})` : `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}

/**
 * A port found ours is trusted for this long in this process: /proc/net/tcp6 costs ~10 ms a read
 * on a busy machine (the kernel walks every connection), and a bulk admin run makes thousands of calls.
 */
const RECHECK_AFTER_MS = 1_000;
const recentlyOurs = new Map<string, number>();

export interface LoopbackSend {
  /** Where the address came from, for the message: 'the gateway', '"address" of the Vault store'. */
  what: string;
  /** What the request carries: 'your key', 'the Vault token'. */
  carries: string;
}

/**
 * Throws a ConfigError (exit 3) when `address` is plain http:// to this machine and a socket of
 * another local user listens there; anything else (https, another host, our own or root's
 * listener, nothing listening yet) passes. `listeners` is for tests.
 */
export function checkLoopbackOwner(address: string | URL, send: LoopbackSend, listeners?: () => Listener[]): void {
  if (process.platform !== 'linux' && !listeners) return;
  const url = typeof address === 'string' ? new URL(address) : address;
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) return;
  const port = Number(url.port || 80);
  const checkedAt = recentlyOurs.get(url.host);
  if (!listeners && checkedAt !== undefined && performance.now() - checkedAt < RECHECK_AFTER_MS) return;
  let found: Listener[];
  try {
    found = (listeners ?? readListeners)();
  } catch (error) {
    // Fail closed: no way to tell who listens, so the credential stays here.
    throw new ConfigError(
      `cannot tell who listens on ${url.host} (${(error as NodeJS.ErrnoException).code ?? 'no /proc/net/tcp'}): keybroker did not send ${send.carries} to ${send.what}`,
      'mount /proc, or use an https:// address',
    );
  }
  const me = process.getuid?.() ?? 0;
  const stranger = listenerUids(url.hostname, port, found).find((uid) => uid !== me && uid !== 0);
  if (stranger === undefined) {
    if (!listeners) recentlyOurs.set(url.host, performance.now());
    return;
  }
  throw new ConfigError(
    `${send.what} ${url.origin} is a port on this machine that another local user listens on (${describeUid(stranger)}, not you): keybroker did not send ${send.carries} there`,
    `stop that listener or start your own server on a free port and point ${send.what} at it; 'ss -ltnpe sport = :${port}' shows who listens`,
  );
}
