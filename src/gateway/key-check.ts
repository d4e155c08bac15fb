// Asks the gateway whether it accepts a key, with the cheapest authenticated request there is
// (GET /v1/models, sent as Claude Code sends it). Used only after a 401 when the store still
// holds the same key, to tell "revoked" from a passing hiccup.

export type GatewayVerdict = 'accepted' | 'rejected' | 'unknown';

const GATEWAY_CHECK_TIMEOUT_MS = 2_000;

export async function checkKeyWithGateway(baseUrl: string, key: string, timeoutMs = GATEWAY_CHECK_TIMEOUT_MS): Promise<GatewayVerdict> {
  let url: URL;
  try {
    url = new URL('v1/models', baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  } catch {
    return 'unknown';
  }
  try {
    const response = await fetch(url, {
      method: 'GET',
      redirect: 'manual',
      headers: { 'x-api-key': key, authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body?.cancel();
    if (response.status === 401) return 'rejected';
    if (response.ok) return 'accepted';
    return 'unknown';
  } catch {
    return 'unknown';
  }
}
