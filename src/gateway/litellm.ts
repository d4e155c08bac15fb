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

export function createLiteLlmIssuer(config: KeyIssuerConfig, context: IssuerContext): KeyIssuer {
  const base = config.url.replace(/\/+$/, '');
  const where = `LiteLLM at ${base}`;
  const masterKeyEnv = config.masterKeyEnv ?? DEFAULT_MASTER_KEY_ENV;
  const doFetch = context.fetch ?? fetch;
  if (isPlainHttpToAnotherHost(base) && !context.allowInsecureHttp) {
    // Every call carries the master key as Authorization: Bearer.
    throw new ConfigError(
      `keyIssuer.url ${base} is plain http:// to another machine: the gateway's master key would cross the network unencrypted`,
      'use the gateway\'s https:// address (or, only on a network you trust end to end, set "allowInsecureHttp": true in the profile)',
    );
  }

  function masterKey(): string {
    const value = context.env[masterKeyEnv];
    if (!value)
      throw new ConfigError(
        `${masterKeyEnv} is not set: ${where} needs its master key for key management`,
        `export ${masterKeyEnv} (never pass it as an argument)`,
      );
    return value;
  }

  /** The parsed JSON answer, or undefined for a 404/400 "no such key" when `missingOk`. */
  async function call(route: string, body: unknown, missingOk = false, method: 'POST' | 'GET' = 'POST'): Promise<unknown> {
    const authorization = `Bearer ${masterKey()}`;
    checkLoopbackOwner(base, { what: 'keyIssuer.url', carries: "the gateway's master key" });
    let response: Response;
    try {
      response = await doFetch(`${base}${route}`, {
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
    return answerOf(response, await response.text(), { where, masterKeyEnv, route, missingOk });
  }

  function minted(answer: unknown, route: string): MintedKey {
    const body = answer as GenerateResponse;
    if (typeof body?.key !== 'string' || body.key === '')
      throw new StoreUnreachable(`${where} answered ${route} without a key`, 'check the gateway version supports the key API');
    const result: MintedKey = { key: body.key };
    if (body.expires) {
      const date = new Date(body.expires);
      if (!Number.isNaN(date.getTime())) result.expiresAt = date;
    }
    return result;
  }

  const keyFields = (user: string) => ({
    user_id: user,
    ...(config.keyDuration ? { duration: liteLlmDuration(parseDuration(config.keyDuration)!) } : {}),
    ...(config.models ? { models: config.models } : {}),
    metadata: { 'managed-by': 'keybroker' },
  });

  /** Every key the gateway holds for `user` that keybroker minted, page by page; full objects carry the hashed `token`. */
  async function managedKeys(user: string): Promise<ListedKey[]> {
    const found: ListedKey[] = [];
    for (let page = 1; page <= MAX_LIST_PAGES; page++) {
      const answer = (await call(
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
      `${where} listed more than ${MAX_LIST_PAGES * LIST_PAGE_SIZE} keys for ${user}`,
      `delete ${user}'s keys at the gateway by hand`,
    );
  }

  return {
    describe: () => where,
    async mint(user, alias = mintAlias(user, Date.now())) {
      // Aliases are unique at the gateway and the old key lives on until retired: one alias per mint.
      return minted(await call('/key/generate', { ...keyFields(user), key_alias: alias }), '/key/generate');
    },
    async retire(key, graceMs) {
      // With a grace: /key/update's `duration` restarts the key's lifetime from now, so it ends
      // then. Without: /key/delete. Neither mints anything.
      const answer =
        graceMs > 0
          ? await call('/key/update', { key, duration: liteLlmDuration(graceMs) }, true)
          : await call('/key/delete', { keys: [key] }, true);
      return answer === undefined ? 'unknown' : 'retired';
    },
    async revoke(keys) {
      if (keys.length === 0) return false;
      return (await call('/key/delete', { keys }, true)) !== undefined;
    },
    async revokeUser(user) {
      const tokens = (await managedKeys(user)).map((entry) => entry.token);
      if (tokens.length === 0) return 0;
      await call('/key/delete', { keys: tokens }, true);
      return tokens.length;
    },
    async revokeAlias(user, alias) {
      const tokens = (await managedKeys(user)).filter((entry) => entry.key_alias === alias).map((entry) => entry.token);
      if (tokens.length === 0) return 0;
      await call('/key/delete', { keys: tokens }, true);
      return tokens.length;
    },
  };
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
