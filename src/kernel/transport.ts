// Where a credential may travel in the clear: plain http:// only to this machine (the loopback
// interface), never across a network, where anyone on the path reads the token or the key.

/** localhost, 127.0.0.0/8 or ::1: traffic that never leaves this machine. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** True for an http:// URL whose host is not this machine: whatever it carries crosses the network unencrypted. */
export function isPlainHttpToAnotherHost(address: string | URL): boolean {
  let url: URL;
  try {
    url = typeof address === 'string' ? new URL(address) : address;
  } catch {
    return false;
  }
  return url.protocol === 'http:' && !isLoopbackHost(url.hostname);
}
