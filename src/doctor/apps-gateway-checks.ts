// Layer 5, before any key is sent: is the gateway a Claude apps gateway (Anthropic's own, in the
// `claude` binary)? It says so in its RFC 8414 metadata (`gateway_protocol_version`). If it is,
// check what a rollout needs (health, the device sign-in, an address Claude Code's /login accepts)
// and send it no credential it did not issue: only the session token an `oidc` profile whose
// issuer is this gateway got from it.
import dns from 'node:dns/promises';
import net from 'node:net';
import { isLoopbackHost } from '../kernel/transport.ts';
import { ok, skip, warn, fail, type CheckOutcome, type CheckSpec } from './check.ts';
import type { DoctorDeps, DoctorState } from './state.ts';

const CALL_TIMEOUT_MS = 4_000;
/** A probe reads only the status; the body is dropped so the connection is freed. */
const statusOnly = (response: Response): number => {
  void response.body?.cancel().catch(() => {});
  return response.status;
};
const NATIVE_SIGN_IN =
  'Claude Code and the Claude Desktop app sign in to it natively (/login; managed settings "forceLoginMethod": "gateway" and "forceLoginGatewayUrl", which keybroker setup --managed --apps-gateway URL prints) and need no apiKeyHelper; with that sign-in pinned, Claude Code refuses to start when an API key or apiKeyHelper is configured too. keybroker serves the callers that do not sign in natively (scripts, CI, MCP servers)';

interface GatewayMetadata {
  gateway_protocol_version?: unknown;
  device_authorization_endpoint?: unknown;
  issuer?: unknown;
}

/** IPv4 private, shared (CGNAT) and link-local space, IPv6 unique-local and link-local: a private network. */
function isPrivateAddress(address: string): boolean {
  if (net.isIPv4(address)) {
    const [a, b] = address.split('.').map(Number) as [number, number];
    return (
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254)
    );
  }
  const lower = address.toLowerCase();
  return net.isIPv6(address) && (/^f[cd]/.test(lower) || lower.startsWith('fe80:'));
}

async function getJson(deps: DoctorDeps, url: string, signal: AbortSignal): Promise<{ status: number; body: unknown }> {
  const response = await deps.fetch(url, { redirect: 'manual', signal, headers: { accept: 'application/json' } });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: undefined };
  }
}

/** Where Claude Code's /login accepts the gateway: HTTPS, at an address on a private network. */
async function addressVerdict(url: URL): Promise<{ fine: boolean; finding: string }> {
  if (url.protocol !== 'https:')
    return {
      fine: false,
      finding: `${url.origin} is not HTTPS: Claude Code's /login reaches a gateway only over HTTPS on a private network${isLoopbackHost(url.hostname) ? ' (loopback is for testing)' : ''}`,
    };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = net.isIP(host) ? [host] : (await dns.lookup(host, { all: true })).map((found) => found.address);
  const open = addresses.filter((address) => !isPrivateAddress(address));
  if (open.length)
    return {
      fine: false,
      finding: `${url.hostname} resolves to ${open.join(', ')}, outside private space: Claude Code's /login refuses it unless managed settings list its block in "gatewayInternalNetworks"`,
    };
  return { fine: true, finding: `${url.hostname} is HTTPS at ${addresses.join(', ')} (private)` };
}

export function appsGatewayCheck(deps: DoctorDeps, state: DoctorState): CheckSpec {
  return {
    id: 'gateway.apps-gateway',
    layer: 'gateway',
    title: 'Claude apps gateway',
    timeoutMs: 3 * CALL_TIMEOUT_MS,
    async run(signal): Promise<CheckOutcome> {
      if (!state.gatewayUrl || state.gatewayUntrusted || state.gatewayDown) return skip('no gateway to check');
      const origin = state.gatewayUrl.origin;
      const metadata = await getJson(deps, `${origin}/.well-known/oauth-authorization-server`, signal).catch(() => undefined);
      const found = metadata?.status === 200 ? (metadata.body as GatewayMetadata | undefined) : undefined;
      if (typeof found?.gateway_protocol_version !== 'number')
        return ok(`${origin} is not a Claude apps gateway (no gateway_protocol_version in OAuth metadata)`, { appsGateway: false });
      const issuer = state.config?.profile.oidc?.issuer;
      if (!issuer || new URL(issuer).origin !== origin) {
        // The gateway takes only the session tokens it issued: a stored key or another IdP's token would be handed to it for nothing.
        state.keyWithheld = {
          why: `${origin} is a Claude apps gateway: it takes only the session tokens it issues, so keybroker does not send it this profile's credential`,
          fix: `sign in to the gateway itself with a profile {"oidc": {"issuer": "${origin}", "clientId": "keybroker", "flow": "device"}} (docs/sso.md)`,
        };
      }
      const details: Record<string, unknown> = {
        protocolVersion: found.gateway_protocol_version,
        deviceAuthorizationEndpoint: found.device_authorization_endpoint,
        keySent: !state.keyWithheld,
      };
      const problems: string[] = [];
      const health = await deps.fetch(`${origin}/healthz`, { redirect: 'manual', signal }).then(statusOnly, () => 0);
      details['healthz'] = health;
      if (health !== 200) problems.push(health ? `/healthz answered HTTP ${health}` : '/healthz did not answer');
      problems.push(...(await deviceEndpointProblems(deps, found.device_authorization_endpoint, signal)));
      if (!problems.length)
        problems.push(...(await identityProviderProblems(deps, found.device_authorization_endpoint as string, origin, signal)));
      const address = await addressVerdict(state.gatewayUrl).catch((error: Error) => ({
        fine: false,
        finding: `${state.gatewayUrl!.hostname} does not resolve (${error.message})`,
      }));
      details['addressAccepted'] = address.fine;
      const summary = `${origin} is a Claude apps gateway (protocol ${found.gateway_protocol_version}). ${NATIVE_SIGN_IN}`;
      if (problems.length)
        return {
          ...fail(
            `${summary}. Not ready: ${problems.join('; ')}`,
            "check the gateway's log: its store (PostgreSQL) and its identity provider (oidc.issuer) must be up",
          ),
          details,
        };
      const addressFix = 'serve it at an https:// address on your private network (or list its public block in "gatewayInternalNetworks")';
      const warnings = [
        ...(state.keyWithheld ? [state.keyWithheld] : []),
        ...(address.fine ? [] : [{ why: address.finding, fix: addressFix }]),
      ];
      if (warnings.length)
        return warn(`${summary}. ${warnings.map((item) => item.why).join('. ')}`, warnings.map((item) => item.fix).join('; '), details);
      return ok(`${summary}. Healthy; device sign-in offered; ${address.finding}`, details);
    },
  };
}

/** The device authorization endpoint answers (a GET, which starts no sign-in) and is on the gateway itself. */
async function deviceEndpointProblems(deps: DoctorDeps, endpoint: unknown, signal: AbortSignal): Promise<string[]> {
  if (typeof endpoint !== 'string') return ['its metadata names no device_authorization_endpoint'];
  const status = await deps.fetch(endpoint, { method: 'GET', redirect: 'manual', signal }).then(statusOnly, () => 0);
  if (!status) return [`its device authorization endpoint ${endpoint} did not answer`];
  if (status >= 500) return [`its device authorization endpoint answered HTTP ${status}`];
  return [];
}

/**
 * Where a developer's browser goes to sign in: a device sign-in started with no credential, its
 * approval page posted as a browser does, the gateway's redirect to its IdP followed once, then
 * the sign-in denied so that nothing is left pending.
 */
async function identityProviderProblems(deps: DoctorDeps, endpoint: string, origin: string, signal: AbortSignal): Promise<string[]> {
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const started = await getJsonPost(deps, endpoint, 'client_id=keybroker-doctor', signal);
  const userCode = (started as { user_code?: unknown } | undefined)?.user_code;
  if (typeof userCode !== 'string') return ['its device authorization endpoint did not start a sign-in'];
  const body = new URLSearchParams({ user_code: userCode }).toString();
  const browser = { ...form, origin, 'sec-fetch-site': 'same-origin' };
  try {
    const approval = await deps.fetch(`${origin}/device`, { method: 'POST', redirect: 'manual', headers: browser, body, signal });
    await approval.body?.cancel().catch(() => {});
    const location = approval.headers.get('location');
    if (approval.status < 300 || approval.status >= 400 || !location)
      return [`its device page answered HTTP ${approval.status}, not a redirect to the identity provider`];
    const idp = new URL(location, origin);
    const answered = await deps.fetch(idp, { method: 'GET', redirect: 'manual', signal }).then(statusOnly, () => 0);
    if (!answered) return [`its identity provider ${idp.origin}, where developers sign in, did not answer`];
    if (answered >= 500) return [`its identity provider ${idp.origin} answered HTTP ${answered}`];
    return [];
  } finally {
    await deps.fetch(`${origin}/device/deny`, { method: 'POST', redirect: 'manual', headers: browser, body, signal }).then(
      (response) => response.body?.cancel(),
      () => {},
    );
  }
}

async function getJsonPost(deps: DoctorDeps, url: string, body: string, signal: AbortSignal): Promise<unknown> {
  const response = await deps
    .fetch(url, {
      method: 'POST',
      redirect: 'manual',
      signal,
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
    })
    .catch(() => undefined);
  return response?.json().catch(() => undefined);
}
