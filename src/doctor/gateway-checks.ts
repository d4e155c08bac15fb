// Layer 5: the LLM gateway Claude Code talks to, with the developer's key: the URL, redirects
// (followed none), the models listing, one minimal message per model, and a streamed message
// whose events must arrive as they are produced.
import { effectiveVariable, describeScope, isProjectScope, readClaudeSettings } from '../claude/settings.ts';
import { isPlainHttpToAnotherHost } from '../kernel/transport.ts';
import { checkLoopbackOwner } from '../kernel/loopback-owner.ts';
import { fingerprint } from '../secret/value.ts';
import { maskSecrets } from '../kernel/output.ts';
import { oneLine, ExitCode, ConfigError } from '../kernel/errors.ts';
import { fail, ok, skip, warn, type CheckOutcome, type CheckSpec } from './check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from './state.ts';
import { appsGatewayCheck } from './apps-gateway-checks.ts';
import { refuseEnforcedFlag } from '../config/config.ts';

const GATEWAY_CALL_TIMEOUT_MS = 4_000;
const STREAM_TIMEOUT_MS = 6_000;
/** Events spread over less than this arrived in one burst: the gateway (or a proxy) buffered them. */
const BUFFERED_SPREAD_MS = 20;
const ANTHROPIC_VERSION = '2023-06-01';
const GATEWAY_SEND = { what: 'the gateway', carries: 'your key' };

/** The gateway checks in order: the URL, HEAD /, the apps gateway, the listing, a message per model, the stream. */
export function gatewayChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  const context: CheckContext = { deps, state };
  // One message check per model; the names are only known once the listing has run.
  const modelNames = deps.models.length ? deps.models : ['(default)'];
  const messages = modelNames.map(
    (name, index): CheckSpec => ({
      id: `gateway.message${modelNames.length > 1 ? `.${index + 1}` : ''}`,
      layer: 'gateway',
      title: deps.models.length ? `gateway message to ${name}` : 'gateway message',
      timeoutMs: GATEWAY_CALL_TIMEOUT_MS,
      run: (signal) => checkMessage(context, deps.models.length ? name : undefined, signal),
    }),
  );
  return [
    { id: 'gateway.url', layer: 'gateway', title: 'gateway URL', timeoutMs: 1_000, run: async () => checkGatewayUrl(context) },
    {
      id: 'gateway.reachable',
      layer: 'gateway',
      title: 'gateway reachable',
      timeoutMs: GATEWAY_CALL_TIMEOUT_MS,
      run: (signal) => checkReachable(context, signal),
    },
    appsGatewayCheck(deps, state),
    {
      id: 'gateway.models',
      layer: 'gateway',
      title: 'gateway models',
      timeoutMs: GATEWAY_CALL_TIMEOUT_MS,
      run: (signal) => checkModels(context, signal),
    },
    ...messages,
    {
      id: 'gateway.streaming',
      layer: 'gateway',
      title: 'gateway streaming',
      timeoutMs: STREAM_TIMEOUT_MS,
      run: (signal) => checkStreaming(context, signal),
    },
  ];
}

/** Why a check that sends the key does not run (no gateway, the key withheld, the gateway down, no key); undefined when it can. */
function notReady(state: DoctorState): CheckOutcome | undefined {
  if (!state.gatewayUrl) return skip('no gateway to check');
  if (state.keyWithheld) return skip(`not tried: ${state.keyWithheld.why}`, state.keyWithheld.fix);
  if (state.gatewayDown) return skip(`not tried: ${state.gatewayDown}`, 'fix the gateway connection first');
  if (!state.key) return skip('no key to test with (neither the store nor the cache gave one)', 'fix the store checks first');
  return undefined;
}

/** A request to the gateway with the developer's key, as Claude Code sends it; follows no redirect. */
function sendWithKey(
  { deps, state }: CheckContext,
  pathname: string,
  init: { method: string; body?: unknown; signal: AbortSignal },
): Promise<Response> {
  // The one place the key leaves: checked here again, whatever a check above decided.
  if (state.keyWithheld || state.gatewayUntrusted || isPlainHttpToAnotherHost(state.gatewayUrl!))
    throw new Error('internal: the key may not go to this gateway');
  checkLoopbackOwner(state.gatewayUrl!, GATEWAY_SEND);
  // Relative to the base URL's path, as Claude Code appends /v1/messages to ANTHROPIC_BASE_URL.
  const base = state.gatewayUrl!.href.endsWith('/') ? state.gatewayUrl!.href : `${state.gatewayUrl!.href}/`;
  const url = new URL(pathname, base);
  deps.debug(`gateway: ${init.method} ${url.href}`);
  return deps.fetch(url, {
    method: init.method,
    redirect: 'manual',
    signal: init.signal,
    // Both headers, as Claude Code sends the helper's key: a gateway may read either.
    headers: {
      'x-api-key': state.key!,
      authorization: `Bearer ${state.key!}`,
      'anthropic-version': ANTHROPIC_VERSION,
      ...(init.body ? { 'content-type': 'application/json' } : {}),
    },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
}

/** A FAIL for a gateway that did not answer; the later gateway checks then skip. */
function unreachable(state: DoctorState, error: unknown): CheckOutcome {
  const why = networkError(error);
  state.gatewayDown = `${state.gatewayUrl!.origin} ${why}`;
  return {
    ...fail(
      `cannot reach the gateway at ${state.gatewayUrl!.origin}: ${why}`,
      'check the URL, your network or VPN, and that the gateway is up',
    ),
    exitCode: ExitCode.storeUnreachable,
  };
}

/** The models to try when none was given: ANTHROPIC_MODEL, else the first the gateway listed. */
function modelsToTry({ deps, state }: CheckContext): string[] {
  return deps.models.length ? deps.models : defaultModel(deps, state);
}

/** The gateway Claude Code would use is a http(s) URL the developer chose, that the key may go to. */
export function checkGatewayUrl({ deps, state }: CheckContext): CheckOutcome {
  const chosen = chooseGateway(deps, state);
  if (!chosen)
    return warn(
      'no gateway set: Claude Code talks to api.anthropic.com, where a gateway key does not work',
      "set ANTHROPIC_BASE_URL ('keybroker setup' writes it), or pass --gateway URL",
    );
  let url: URL;
  try {
    url = new URL(chosen.value);
  } catch {
    return fail(`the gateway "${chosen.value}" from ${chosen.from} is not a URL`, 'set it to e.g. https://llm.example.com');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail(`${url.href} (from ${chosen.from}) is neither http nor https`, "set it to the gateway's https:// address", {
      url: url.href,
      from: chosen.from,
    });
  }
  state.gatewayUrl = url;
  const details = { url: url.href, from: chosen.from, keySent: false };
  if (chosen.project) return projectOverride(state, url, chosen, details);
  const enforced = enforcedElsewhere(deps, state);
  if (enforced) {
    // The machine-wide file names the one gateway the key may go to: another address typed here is not contacted.
    state.gatewayUntrusted = true;
    state.keyWithheld = { why: enforced.message, fix: enforced.fix };
    return { ...fail(enforced.message, enforced.fix, details), exitCode: enforced.exitCode };
  }
  if (isPlainHttpToAnotherHost(url)) {
    state.keyWithheld = {
      why: `${url.origin} is plain HTTP to another machine, so keybroker does not send your key there`,
      fix: "use the gateway's https:// address",
    };
    return fail(
      `${url.href} (from ${chosen.from}) is plain HTTP to another machine: Claude Code would send your key across the network unencrypted; doctor did not send it`,
      "use the gateway's https:// address",
      details,
    );
  }
  try {
    checkLoopbackOwner(url, GATEWAY_SEND);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // Another local user's port: not contacted at all, as a project's address.
    state.gatewayUntrusted = true;
    state.keyWithheld = { why: error.message, fix: error.fix };
    return { ...fail(error.message, error.fix, details), exitCode: error.exitCode };
  }
  details.keySent = true;
  if (url.protocol === 'https:') return ok(`${url.href} (from ${chosen.from})`, details);
  return ok(`${url.href} (from ${chosen.from}; plain HTTP on this machine only)`, details);
}

/** --gateway naming another address than the gateway the machine-wide file enforces: the refusal, as `env --gateway` gets it. */
function enforcedElsewhere(deps: DoctorDeps, state: DoctorState): ConfigError | undefined {
  if (!state.config) return undefined;
  try {
    refuseEnforcedFlag(state.config, 'gateway', '--gateway', deps.gateway);
    return undefined;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
}

/** A cloned repository chose this address, not the developer: not contacted, key or not. */
function projectOverride(state: DoctorState, url: URL, chosen: ChosenGateway, details: Record<string, unknown>): CheckOutcome {
  state.gatewayUntrusted = true;
  state.keyWithheld = {
    why: `the gateway address comes from the project's settings, so keybroker does not send your key there`,
    fix: `if you trust ${url.origin}, check it with 'keybroker doctor --gateway ${url.href}'`,
  };
  return warn(
    `this project overrides the gateway: ANTHROPIC_BASE_URL=${url.href} in ${chosen.from}; Claude Code will send your key there once this folder is trusted; doctor did not contact it`,
    `trust this folder only if ${url.host} is your company's gateway; otherwise remove ANTHROPIC_BASE_URL from ${chosen.path}. To test it with your key: 'keybroker doctor --gateway ${url.href}'`,
    { ...details, projectOverride: true },
  );
}

/** Claude Code's own first request, HEAD / without a key: any HTTP answer means the host is there. */
async function checkReachable({ deps, state }: CheckContext, signal: AbortSignal): Promise<CheckOutcome> {
  if (!state.gatewayUrl) return skip('no gateway to check');
  if (state.gatewayUntrusted) return skip(`not tried: ${state.keyWithheld!.why}`, state.keyWithheld!.fix);
  const started = performance.now();
  let response: Response;
  try {
    response = await deps.fetch(state.gatewayUrl, { method: 'HEAD', redirect: 'manual', signal });
  } catch (error) {
    return unreachable(state, error);
  }
  await response.body?.cancel().catch(() => {});
  return ok(`${state.gatewayUrl.origin} answered HEAD / with HTTP ${response.status} in ${Math.round(performance.now() - started)} ms`, {
    status: response.status,
  });
}

/** GET /v1/models with the key: the models listed (remembered for the message checks), or why not. */
async function checkModels(context: CheckContext, signal: AbortSignal): Promise<CheckOutcome> {
  const { state } = context;
  const blocked = notReady(state);
  if (blocked) return blocked;
  let response: Response;
  try {
    response = await sendWithKey(context, 'v1/models', { method: 'GET', signal });
  } catch (error) {
    return unreachable(state, error);
  }
  const body = await readBody(response, signal);
  if (response.status === 200) return listedModels(body, state);
  if (response.status === 404)
    return warn(
      `GET /v1/models: 404 (the gateway does not list models): ${shown(body, state)}`,
      'nothing to do if the message checks below pass',
    );
  return describeFailure('GET /v1/models', response, body, state);
}

/** A 200 listing's model ids (the first five shown); a body that is not JSON is a web page, not the API. */
export function listedModels(body: string, state: DoctorState): CheckOutcome {
  let ids: string[] = [];
  try {
    ids = ((JSON.parse(body) as { data?: { id?: string }[] }).data ?? []).map((model) => String(model.id));
  } catch {
    return warn(
      `GET /v1/models answered 200 but not with JSON: ${shown(body, state)}`,
      "check that ANTHROPIC_BASE_URL is the gateway's API address, not a web page",
    );
  }
  state.listedModels = ids;
  return ok(
    `GET /v1/models: ${ids.length} model${ids.length === 1 ? '' : 's'}${ids.length ? ` (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''})` : ''}`,
    { models: ids },
  );
}

/** One minimal message to `given` (or, with no --model, the default model): routed and answered. */
async function checkMessage(context: CheckContext, given: string | undefined, signal: AbortSignal): Promise<CheckOutcome> {
  const { state } = context;
  const blocked = notReady(state);
  if (blocked) return blocked;
  const model = given ?? modelsToTry(context)[0];
  if (!model) return skip('no model to try: the gateway listed none and none was given', 'pass --model NAME');
  let response: Response;
  try {
    response = await sendWithKey(context, 'v1/messages', { method: 'POST', signal, body: minimalMessage(model, false) });
  } catch (error) {
    return unreachable(state, error);
  }
  const body = await readBody(response, signal);
  if (response.status === 200) return ok(`POST /v1/messages with ${model}: 200`, { model, status: 200 });
  if (response.status === 404 && !isHtml(response, body)) {
    return fail(
      `${model} is not routed by the gateway (404: ${shown(body, state)})`,
      `ask the gateway admin to route ${model}, or use a model it lists`,
      { model, status: 404 },
    );
  }
  return describeFailure(`POST /v1/messages with ${model}`, response, body, state);
}

/** A streamed message: text/event-stream whose events arrive as they are produced, not in one burst. */
async function checkStreaming(context: CheckContext, signal: AbortSignal): Promise<CheckOutcome> {
  const { state } = context;
  const blocked = notReady(state);
  if (blocked) return blocked;
  const model = modelsToTry(context)[0];
  if (!model) return skip('no model to try', 'pass --model NAME');
  const started = performance.now();
  let response: Response;
  try {
    response = await sendWithKey(context, 'v1/messages', { method: 'POST', signal, body: minimalMessage(model, true) });
  } catch (error) {
    return unreachable(state, error);
  }
  if (response.status !== 200)
    return describeFailure(`streaming POST /v1/messages with ${model}`, response, await readBody(response, signal), state);
  const type = response.headers.get('content-type') ?? '';
  if (!type.includes('text/event-stream')) {
    return fail(
      `a streaming request answered ${type || 'no content type'}, not text/event-stream`,
      'ask the gateway admin to pass streaming (SSE) responses through',
      { contentType: type },
    );
  }
  return streamTiming(model, started, await eventArrivals(response, signal));
}

/** When the events arrived (performance.now(), after the request at `started`): none, all in one burst (buffered), or spread out. */
export function streamTiming(model: string, started: number, arrivals: number[]): CheckOutcome {
  if (arrivals.length === 0)
    return fail('the streaming response carried no data: events', 'ask the gateway admin to pass SSE events through');
  const first = arrivals[0]! - started;
  const spread = arrivals.at(-1)! - arrivals[0]!;
  const details = { model, events: arrivals.length, firstEventMs: Math.round(first), firstToLastMs: Math.round(spread) };
  const timing = `${arrivals.length} events, first after ${Math.round(first)} ms, ${Math.round(spread)} ms from first to last`;
  if (arrivals.length >= 3 && spread < BUFFERED_SPREAD_MS) {
    return fail(
      `${timing}: all at once, so the gateway or a proxy buffers the stream (Claude Code then stalls until the end of every answer)`,
      'ask the gateway admin to turn off response buffering for /v1/messages (e.g. proxy_buffering off, X-Accel-Buffering: no)',
      details,
    );
  }
  return ok(`${timing}: arrived incrementally`, details);
}

/** A gateway address and where it was set. */
interface ChosenGateway {
  value: string;
  from: string;
  /** A cloned repository's settings chose it. */
  project?: boolean;
  path?: string;
}

/** The gateway Claude Code would use; `project` when a cloned repository's settings chose it. */
function chooseGateway(deps: DoctorDeps, state: DoctorState): ChosenGateway | undefined {
  // The developer's explicit choice is the only way to send the key to an address a project names.
  if (deps.gateway) return { value: deps.gateway, from: '--gateway' };
  // Read here too: a project's address must be seen even when the Claude Code checks did not run.
  state.claudeFiles ??= readClaudeSettings(deps.env, deps.projectDir, deps.platform);
  const variable = effectiveVariable(state.claudeFiles, deps.env, 'ANTHROPIC_BASE_URL');
  if (variable && isProjectScope(variable.scope))
    return { value: variable.value, from: describeScope(variable), project: true, ...(variable.path ? { path: variable.path } : {}) };
  if (variable) return { value: variable.value, from: `ANTHROPIC_BASE_URL in ${describeScope(variable)}` };
  const profile = state.config?.profile;
  if (profile?.gateway) return { value: profile.gateway, from: `"gateway" of profile "${profile.name}"` };
  return undefined;
}

/** ANTHROPIC_MODEL when set, else the first listed model. */
function defaultModel(deps: DoctorDeps, state: DoctorState): string[] {
  const variable = effectiveVariable(state.claudeFiles ?? [], deps.env, 'ANTHROPIC_MODEL');
  if (variable) return [variable.value];
  return state.listedModels?.slice(0, 1) ?? [];
}

/** The smallest message a gateway answers: one token, or a short count when streamed (so several events arrive). */
function minimalMessage(model: string, stream: boolean) {
  return {
    model,
    max_tokens: stream ? 32 : 1,
    messages: [{ role: 'user', content: stream ? 'Count from 1 to 10.' : 'ping' }],
    ...(stream ? { stream: true } : {}),
  };
}

/** A gateway's non-200 answer as a verdict: a redirect, a rejected key, a WAF page, a rate limit, a server error. */
export function describeFailure(what: string, response: Response, body: string, state: DoctorState): CheckOutcome {
  const status = response.status;
  const returned = shown(body, state);
  if (status >= 300 && status < 400) {
    const location = response.headers.get('location') ?? '(no Location header)';
    return fail(
      `${what}: ${status} redirect to ${location}; keybroker follows none and Claude Code would send the key elsewhere or fail`,
      `set ANTHROPIC_BASE_URL to the gateway's final API address (a redirect usually means a login page or a moved host)`,
      { status, location },
    );
  }
  if (status === 401) {
    return {
      ...fail(
        `${what}: 401, the gateway rejected key ${fingerprint(state.key!)} from ${state.keyFrom} (${returned})`,
        `ask the gateway admin whether key ${fingerprint(state.key!)} is active and yours; after a rotation run 'keybroker status --refresh'`,
        { status, fingerprint: fingerprint(state.key!) },
      ),
      exitCode: ExitCode.keyRejected,
    };
  }
  if (status === 403 && isHtml(response, body)) {
    const title = /<title>([^<]*)<\/title>|<h1>([^<]*)<\/h1>/i.exec(body);
    return fail(
      `${what}: 403 with an HTML page${title ? ` ("${(title[1] ?? title[2] ?? '').trim()}")` : ''}: a web application firewall or proxy is in the way (${returned})`,
      'ask the network team to let API traffic to the gateway through (or use the address that bypasses the WAF)',
      { status, html: true },
    );
  }
  if (status === 403)
    return fail(`${what}: 403, the key is not allowed (${returned})`, `ask the gateway admin what key ${fingerprint(state.key!)} may use`, {
      status,
    });
  if (status === 429)
    return warn(`${what}: 429 rate limited (${returned})`, 'try again later; ask the gateway admin about your limits', { status });
  if (status >= 500)
    return fail(
      `${what}: ${status} from the gateway (${returned})`,
      'the gateway or what it forwards to is failing: tell the gateway admin',
      { status },
    );
  return fail(`${what}: ${status} (${returned})`, 'tell the gateway admin, with this line', { status });
}

/** A web page (a login page, a firewall's), not the API's JSON. */
function isHtml(response: Response, body: string): boolean {
  return (response.headers.get('content-type') ?? '').includes('html') || /^\s*<(!doctype|html)/i.test(body);
}

/** The gateway's answer as it returned it: the Anthropic error's type and message, or the trimmed text. */
function shown(body: string, state: DoctorState): string {
  let text = body;
  try {
    const parsed = JSON.parse(body) as { error?: { type?: string; message?: string } };
    if (parsed.error?.message) text = `${parsed.error.type ?? 'error'}: ${parsed.error.message}`;
  } catch {
    text = body.replace(/<[^>]+>/g, ' ');
  }
  // Masked before it is cut to 200 characters: half a key is no longer recognised (doctor's report is masked again whole).
  const line = oneLine(maskSecrets(text, state.key ? [state.key] : []));
  if (!line) return 'empty body';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** The first 4 KiB of the body, or why it did not arrive. */
async function readBody(response: Response, signal: AbortSignal): Promise<string> {
  try {
    const text = await response.text();
    return text.slice(0, 4_096);
  } catch {
    return signal.aborted ? '(the body did not arrive in time)' : '(unreadable body)';
  }
}

/** When each `data:` line arrived (performance.now()). */
async function eventArrivals(response: Response, signal: AbortSignal): Promise<number[]> {
  const arrivals: number[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const at = performance.now();
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line.startsWith('data:')) arrivals.push(at);
    }
  } finally {
    if (signal.aborted) await reader.cancel().catch(() => {});
  }
  return arrivals;
}

/** Why a request got no HTTP answer, in words (refused, no DNS, reset, TLS, timed out). */
function networkError(error: unknown): string {
  const err = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (err?.name === 'AbortError' || err?.name === 'TimeoutError' || err?.name === 'CheckTimeout') return 'did not answer in time';
  const code = err?.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (nothing listens there)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the host name does not resolve';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'the connection was reset';
  if (code && /CERT|SSL|TLS/i.test(code)) return `TLS failed (${code})`;
  return oneLine(err?.cause?.message ?? err?.message ?? String(error));
}
