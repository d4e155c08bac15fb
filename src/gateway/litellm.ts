// LiteLLM proxy's key API: POST /key/generate, /key/regenerate (with grace_period), /key/delete,
// authorised with the master key (Authorization: Bearer) read from an environment variable.
import type { KeyIssuerConfig } from '../config/config.ts';
import { parseDuration } from '../kernel/duration.ts';
import { AccessDenied, ConfigError, NotAuthenticated, StoreUnreachable } from '../kernel/errors.ts';
import { markThrottled, retryAfterMs } from '../kernel/retry.ts';
import { isPlainHttpToAnotherHost } from '../kernel/transport.ts';
import { checkLoopbackOwner } from '../kernel/loopback-owner.ts';
import { mintAlias, type IssuerContext, type KeyIssuer, type MintedKey } from './key-issuer.ts';
import { maskSecrets } from '../kernel/output.ts';

const DEFAULT_MASTER_KEY_ENV = 'LITELLM_MASTER_KEY';

const LIST_PAGE_SIZE = 100;
const MAX_LIST_PAGES = 100;

interface ListedKey {
  token: string;
  user_id?: unknown;
  key_alias?: unknown;
  metadata?: Record<string, unknown>;
}

interface GenerateResponse {
  key?: string;
  expires?: string | null;
}

/** What every call to one LiteLLM proxy's key API works with. */
interface KeyApi {
  config: KeyIssuerConfig;
  context: IssuerContext;
  /** The proxy's address, without a trailing slash. */
  base: string;
  /** "LiteLLM at <base>", for messages. */
  where: string;
  masterKeyEnv: string;
  fetch: typeof fetch;
}

export function createLiteLlmIssuer(config: KeyIssuerConfig, context: IssuerContext): KeyIssuer {
  const base = config.url.replace(/\/+$/, '');
  const api: KeyApi = {
    config,
    context,
    base,
    where: `LiteLLM at ${base}`,
    masterKeyEnv: config.masterKeyEnv ?? DEFAULT_MASTER_KEY_ENV,
    fetch: context.fetch ?? fetch,
  };
  refusePlainHttpToAnotherHost(api);
  return {
    describe: () => api.where,
    async mint(user, alias = mintAlias(user, Date.now())) {
      // Aliases are unique at the gateway and the old key lives on until retired: one alias per mint.
      return mintedKey(api, await callKeyApi(api, '/key/generate', { ...keyFields(config, user), key_alias: alias }), '/key/generate');
    },
    async retire(key, graceMs) {
      // With a grace: /key/update's `duration` restarts the key's lifetime from now, so it ends
      // then. Without: /key/delete. Neither mints anything.
      const answer =
        graceMs > 0
          ? await callKeyApi(api, '/key/update', { key, duration: liteLlmDuration(graceMs) }, true)
          : await callKeyApi(api, '/key/delete', { keys: [key] }, true);
      return answer === undefined ? 'unknown' : 'retired';
    },
    async revoke(keys) {
      if (keys.length === 0) return false;
      return (await callKeyApi(api, '/key/delete', { keys }, true)) !== undefined;
    },
    async revokeUser(user) {
      return deleteListed(api, await managedKeys(api, user));
    },
    async revokeAlias(user, alias) {
      return deleteListed(
        api,
        (await managedKeys(api, user)).filter((entry) => entry.key_alias === alias),
      );
    },
  };
}

/** Every call carries the master key as Authorization: Bearer: never over plain http:// to another machine unless the profile allows it. */
function refusePlainHttpToAnotherHost(api: KeyApi): void {
  if (isPlainHttpToAnotherHost(api.base) && !api.context.allowInsecureHttp) {
    throw new ConfigError(
      `keyIssuer.url ${api.base} is plain http:// to another machine: the gateway's master key would cross the network unencrypted`,
      'use the gateway\'s https:// address (or, only on a network you trust end to end, set "allowInsecureHttp": true in the profile)',
    );
  }
}

/** The master key from its environment variable, read at each call (never an argument). */
function masterKey(api: KeyApi): string {
  const value = api.context.env[api.masterKeyEnv];
  if (!value)
    throw new ConfigError(
      `${api.masterKeyEnv} is not set: ${api.where} needs its master key for key management`,
      `export ${api.masterKeyEnv} (never pass it as an argument)`,
    );
  return value;
}

/** The parsed JSON answer, or undefined for a 404/400 "no such key" when `missingOk`. */
async function callKeyApi(api: KeyApi, route: string, body: unknown, missingOk = false, method: 'POST' | 'GET' = 'POST'): Promise<unknown> {
  const { base, where, context } = api;
  const authorization = `Bearer ${masterKey(api)}`;
  checkLoopbackOwner(base, { what: 'keyIssuer.url', carries: "the gateway's master key" });
  let response: Response;
  try {
    response = await api.fetch(`${base}${route}`, {
      method,
      headers: { authorization, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
      redirect: 'manual',
      signal: AbortSignal.timeout(context.timeoutMs),
    });
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError')
      throw new StoreUnreachable(
        `${where} did not answer ${route} within ${context.timeoutMs} ms`,
        'check the gateway, or raise "timeout" in the profile',
      );
    const code = (error as { cause?: { code?: string } }).cause?.code ?? name;
    throw new StoreUnreachable(`cannot reach ${where} (${code})`, 'check keyIssuer.url and that the gateway is up');
  }
  return answerOf(response, await response.text(), { where, masterKeyEnv: api.masterKeyEnv, route, missingOk });
}

/** The key (and its end, when the gateway said one) from a /key/generate answer. */
function mintedKey(api: KeyApi, answer: unknown, route: string): MintedKey {
  const body = answer as GenerateResponse;
  if (typeof body?.key !== 'string' || body.key === '')
    throw new StoreUnreachable(`${api.where} answered ${route} without a key`, 'check the gateway version supports the key API');
  const result: MintedKey = { key: body.key };
  if (body.expires) {
    const date = new Date(body.expires);
    if (!Number.isNaN(date.getTime())) result.expiresAt = date;
  }
  return result;
}

/** What a new key is made with: its owner, the profile's lifetime and models, and keybroker's mark. */
function keyFields(config: KeyIssuerConfig, user: string) {
  return {
    user_id: user,
    ...(config.keyDuration ? { duration: liteLlmDuration(parseDuration(config.keyDuration)!) } : {}),
    ...(config.models ? { models: config.models } : {}),
    metadata: { 'managed-by': 'keybroker' },
  };
}

/** Every key the gateway holds for `user` that keybroker minted, page by page; full objects carry the hashed `token`. */
async function managedKeys(api: KeyApi, user: string): Promise<ListedKey[]> {
  const found: ListedKey[] = [];
  for (let page = 1; page <= MAX_LIST_PAGES; page++) {
    const answer = (await callKeyApi(
      api,
      `/key/list?user_id=${encodeURIComponent(user)}&return_full_object=true&size=${LIST_PAGE_SIZE}&page=${page}`,
      undefined,
      false,
      'GET',
    )) as { keys?: unknown[]; total_pages?: unknown } | undefined;
    const keys = answer?.keys ?? [];
    for (const entry of keys as ListedKey[]) {
      if (typeof entry?.token === 'string' && entry.user_id === user && entry.metadata?.['managed-by'] === 'keybroker') found.push(entry);
    }
    const pages = typeof answer?.total_pages === 'number' ? answer.total_pages : 1;
    if (page >= pages || keys.length === 0) return found;
  }
  throw new StoreUnreachable(
    `${api.where} listed more than ${MAX_LIST_PAGES * LIST_PAGE_SIZE} keys for ${user}`,
    `delete ${user}'s keys at the gateway by hand`,
  );
}

/** Deletes the listed keys by their hashed tokens, in one call: the number deleted. */
async function deleteListed(api: KeyApi, listed: ListedKey[]): Promise<number> {
  const tokens = listed.map((entry) => entry.token);
  if (tokens.length === 0) return 0;
  await callKeyApi(api, '/key/delete', { keys: tokens }, true);
  return tokens.length;
}

/** A key API answer as JSON, undefined for "no such key" when `missingOk`, or the typed error its status means. */
function answerOf(
  response: Response,
  text: string,
  call: { where: string; masterKeyEnv: string; route: string; missingOk: boolean },
): unknown {
  const { where, masterKeyEnv, route } = call;
  const message = errorMessage(text);
  if (response.ok) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new StoreUnreachable(
        `${where} answered ${route} with something that is not JSON`,
        'check keyIssuer.url points at the LiteLLM proxy',
      );
    }
  }
  if (call.missingOk && (response.status === 404 || (response.status === 400 && /not found|does not exist|invalid key/i.test(message))))
    return undefined;
  if (response.status === 429) {
    // Not acted on: a bulk action waits as asked and sends it again (src/admin/bulk.ts).
    const wait = retryAfterMs({ headers: response.headers });
    throw markThrottled(
      new StoreUnreachable(
        `${where} is throttling requests (HTTP 429 on ${route}: ${message})`,
        'try again in a minute, or lower --concurrency',
      ),
      wait,
    );
  }
  if (response.status === 401)
    throw new NotAuthenticated(
      `${where} refused the master key from ${masterKeyEnv} (${message})`,
      `set ${masterKeyEnv} to the proxy's master key`,
    );
  if (response.status === 403)
    throw new AccessDenied(
      `${where} does not allow ${route} with the key from ${masterKeyEnv} (${message})`,
      'use an admin (master) key for key management',
    );
  throw new StoreUnreachable(`${where} failed ${route} (HTTP ${response.status}: ${message})`, "check the gateway's logs, then re-run");
}

/** LiteLLM durations are one number and one unit: "30s", "30m", "30h", "30d". */
function liteLlmDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.max(1, Math.ceil(ms / 1_000))}s`;
}

function errorMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { message?: string } | string; detail?: unknown };
    const message =
      typeof body.error === 'string'
        ? body.error
        : (body.error?.message ?? (typeof body.detail === 'string' ? body.detail : JSON.stringify(body.detail ?? body)));
    return maskSecrets(String(message)).slice(0, 200);
  } catch {
    return maskSecrets(text).slice(0, 200) || 'no body';
  }
}
