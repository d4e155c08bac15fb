// Issue 11, must-show 1 and 2: the real Claude Code (npm, offline) runs `keybroker headers` as an
// HTTP MCP server's headersHelper and as its otelHeadersHelper; the built binary reads the key
// from moto and the servers (local capture servers) receive it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Real Claude Code runs and aws CLI seeding: minutes on a loaded shared machine.
vi.setConfig({ testTimeout: 240_000 });
import { startMoto, type Moto } from '../support/moto.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeMcpServer, type FakeMcpServer } from '../fakes/mcp-server.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { runClaudeIn } from '../support/claude.ts';

const SECRET = `claude-code/keys/${os.userInfo().username}`;

let moto: Moto;
let gateway: ToolGateway;
let mcp: FakeMcpServer;
const homes: TestHome[] = [];

beforeAll(async () => {
  [moto, gateway, mcp] = await Promise.all([startMoto(), startToolGateway(), startFakeMcpServer()]);
});
afterAll(async () => {
  await Promise.all([moto?.stop(), gateway?.stop(), mcp?.stop()]);
  for (const home of homes) home.remove();
});

interface ToolGateway {
  url: string;
  stop(): Promise<void>;
}

/**
 * A Messages API that asks for the MCP tool `mcp__capture__echo` once (loading it first through
 * ToolSearch when Claude Code defers it), then answers "pong". Any key is accepted: the model
 * key is not what these tests look at.
 */
async function startToolGateway(): Promise<ToolGateway> {
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://gateway');
      if (url.pathname === '/v1/models')
        return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [], has_more: false }));
      if (url.pathname === '/v1/messages/count_tokens')
        return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"input_tokens":12}');
      if (url.pathname !== '/v1/messages') return void response.writeHead(url.pathname === '/' ? 200 : 404).end();
      const parsed = JSON.parse(body || '{}') as {
        model?: string;
        stream?: boolean;
        tools?: { name: string; defer_loading?: boolean }[];
        messages?: { content: unknown }[];
      };
      const offered = (name: string) => (parsed.tools ?? []).find((tool) => tool.name === name);
      const conversation = JSON.stringify(parsed.messages ?? []);
      const searches = new Set(conversation.match(/toolu_test_search_\d+/g) ?? []).size;
      const echo = offered('mcp__capture__echo');
      // -p starts before the MCP server is connected. 2.1.332 defers MCP tools (`defer_loading`)
      // behind its ToolSearch tool, which waits for the server: select the tool, then call it.
      // Older builds (2.1.197) offered the tool directly once connected, after WaitForMcpServers.
      const block = conversation.includes('toolu_test_echo')
        ? { type: 'text', text: 'pong' }
        : echo && (!echo.defer_loading || searches > 0)
          ? { type: 'tool_use', id: 'toolu_test_echo', name: 'mcp__capture__echo', input: {} }
          : offered('ToolSearch') && searches < 3
            ? {
                type: 'tool_use',
                id: `toolu_test_search_${searches + 1}`,
                name: 'ToolSearch',
                input: { query: 'select:mcp__capture__echo' },
              }
            : offered('WaitForMcpServers') && !conversation.includes('toolu_test_wait')
              ? { type: 'tool_use', id: 'toolu_test_wait', name: 'WaitForMcpServers', input: {} }
              : { type: 'text', text: 'pong' };
      const useTool = block.type === 'tool_use';
      const base = {
        id: 'msg_test',
        type: 'message',
        role: 'assistant',
        model: parsed.model ?? 'claude-sonnet-4-5',
        stop_sequence: null,
        usage: { input_tokens: 12, output_tokens: 2 },
      };
      if (!parsed.stream) {
        return void response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ ...base, content: [block], stop_reason: useTool ? 'tool_use' : 'end_turn' }));
      }
      const events: unknown[] = [
        { type: 'message_start', message: { ...base, content: [], stop_reason: null } },
        { type: 'content_block_start', index: 0, content_block: useTool ? { ...block, input: {} } : { type: 'text', text: '' } },
        {
          type: 'content_block_delta',
          index: 0,
          delta: useTool
            ? { type: 'input_json_delta', partial_json: JSON.stringify((block as { input?: unknown }).input) }
            : { type: 'text_delta', text: 'pong' },
        },
        { type: 'content_block_stop', index: 0 },
        {
          type: 'message_delta',
          delta: { stop_reason: useTool ? 'tool_use' : 'end_turn', stop_sequence: null },
          usage: { output_tokens: 2 },
        },
        { type: 'message_stop' },
      ];
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.end(events.map((event) => `event: ${(event as { type: string }).type}\ndata: ${JSON.stringify(event)}\n\n`).join(''));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

function home(config: unknown): TestHome {
  const made = makeTestHome(config);
  homes.push(made);
  return made;
}

/** `claude ARGS` offline against the tool gateway; apiKeyHelper and keybroker's config in user settings. Telemetry stays off unless `env` turns it on (the OTLP test). */
function runClaude(testHome: TestHome, args: string[], settings: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}) {
  return runClaudeIn(testHome, args, {
    gateway: gateway.url,
    settings,
    env,
    timeoutMs: 150_000,
    telemetry: 'CLAUDE_CODE_ENABLE_TELEMETRY' in env,
  });
}

describe('MCP headersHelper = keybroker headers, under the real Claude Code', () => {
  // How the MCP server refuses the old key. Measured with Claude Code 2.1.197: a 401 on a tool call
  // sent it into OAuth discovery (GET /.well-known/oauth-protected-resource, …-authorization-server,
  // POST /register) and it did not re-run the helper; a 403 re-ran headersHelper. Measured with
  // 2.1.332: either one (the 401 carrying `WWW-Authenticate: Bearer error="invalid_token"`, no
  // resource_metadata) re-runs headersHelper and reconnects — server/discover probe, initialize,
  // retried tools/call — with no OAuth discovery. keybroker treats either re-run the same way.
  it.each([401, 403] as const)(
    "sends the store's key as Bearer; after a rotation and one refusal (%i) the next request carries the new key",
    async (REFUSAL) => {
      const first = `sk-test-mcp-first-key-${REFUSAL}`;
      const second = `sk-test-mcp-rotated-key-${REFUSAL}`;
      const secret = `${SECRET}-mcp-${REFUSAL}`;
      await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', first]);
      const testHome = home({
        ...awsConfig(moto.endpoint, { cache: { backend: 'file' }, secret }),
        mcpServers: { capture: { url: mcp.url } },
      });
      const mcpConfig = path.join(testHome.dir, 'mcp.json');
      fs.writeFileSync(
        mcpConfig,
        JSON.stringify({ mcpServers: { capture: { type: 'http', url: mcp.url, headersHelper: `${BINARY} headers` } } }),
      );
      const args = ['-p', 'call the echo tool', '--mcp-config', mcpConfig, '--strict-mcp-config', '--allowedTools', 'mcp__capture__echo'];

      mcp.accept((authorization) => authorization === `Bearer ${first}`);
      const one = await runClaude(testHome, args);
      expect(one.code, one.stderr).toBe(0);
      const firstRun = mcp.log.splice(0);
      expect(firstRun.length).toBeGreaterThan(0);
      for (const record of firstRun) expect(record.authorization).toBe(`Bearer ${first}`);
      expect(firstRun.filter((record) => record.rpc === 'tools/call')).toMatchObject([{ authorization: `Bearer ${first}`, status: 200 }]);

      // The admin rotates the key in the store. The developer's cache still holds the first key,
      // fresh (refreshAfter 30m), and the MCP server refuses it from the tool call on, once.
      await moto.aws(['secretsmanager', 'put-secret-value', '--secret-id', secret, '--secret-string', second]);
      let refusals = 0;
      mcp.accept(
        (authorization, rpc) =>
          authorization === `Bearer ${second}` ||
          (authorization === `Bearer ${first}` && (rpc !== 'tools/call' || refusals++ > 0 ? rpc !== 'tools/call' : false)),
        REFUSAL,
      );
      const two = await runClaude(testHome, args);
      expect(two.code, two.stderr).toBe(0);
      const secondRun = mcp.log.splice(0);
      const trace = secondRun.map(
        (record) =>
          `${record.method} ${record.rpc ?? '-'} ${record.authorization === `Bearer ${first}` ? 'first key' : record.authorization === `Bearer ${second}` ? 'second key' : String(record.authorization)} -> ${record.status}`,
      );
      console.info(`the MCP server saw, after the rotation:\n${trace.join('\n')}`);
      expect(secondRun[0]).toMatchObject({ method: 'POST', authorization: `Bearer ${first}`, status: 200 });
      const refused = secondRun.findIndex((record) => record.status === REFUSAL);
      expect(secondRun[refused]).toMatchObject({ rpc: 'tools/call', authorization: `Bearer ${first}` });
      expect(secondRun.filter((record) => record.status >= 400 && record.status !== 405)).toHaveLength(1);
      const after = secondRun.slice(refused + 1);
      expect(after.length).toBeGreaterThan(0);
      for (const record of after) expect(record.authorization).toBe(`Bearer ${second}`);
      expect(after.filter((record) => record.rpc === 'tools/call')).toMatchObject([{ status: 200 }]);
    },
    300_000,
  );
});

describe('keybroker headers, the built binary as Claude Code runs it', () => {
  it("prints the profile's headers for a listed MCP server, and refuses an unlisted URL even under a listed name", async () => {
    const key = 'sk-test-headers-binary';
    const secret = `${SECRET}-binary`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', key]);
    const testHome = home({
      ...awsConfig(moto.endpoint, { cache: { backend: 'none' }, secret, headers: { 'x-api-key': '{key}', 'x-tenant': 'acme' } }),
      mcpServers: { corp: { url: 'http://127.0.0.1:1/corp' } },
    });
    const asMcp = (url: string, name: string) =>
      runBinary(['headers'], { env: testHome.env({ CLAUDE_CODE_MCP_SERVER_URL: url, CLAUDE_CODE_MCP_SERVER_NAME: name }) });

    const listed = await asMcp('http://127.0.0.1:1/corp/mcp', 'corp');
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(listed.stdout)).toEqual({ 'x-api-key': key, 'x-tenant': 'acme' });

    const spoofed = await asMcp('https://attacker.example/corp/mcp', 'corp');
    expect(spoofed).toMatchObject({ code: 3, stdout: '' });
    expect(spoofed.stderr).toContain('is not listed in keybroker\'s "mcpServers"');
    expect(spoofed.stderr).not.toContain(key);

    // otelHeadersHelper (no MCP variables): the profile's headers as they are.
    const otel = await runBinary(['headers'], { env: testHome.env() });
    expect(JSON.parse(otel.stdout)).toEqual({ 'x-api-key': key, 'x-tenant': 'acme' });
  });
});

describe('otelHeadersHelper = keybroker headers, under the real Claude Code', () => {
  it("the OTLP/HTTP collector, which requires the header, receives Claude Code's telemetry with the store's key", async () => {
    const key = 'sk-test-otel-collector-key';
    const secret = `${SECRET}-otel`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', key]);
    const collector = await startCollector(`Bearer ${key}`);
    try {
      const testHome = home(awsConfig(moto.endpoint, { cache: { backend: 'file' }, secret }));
      const result = await runClaude(
        testHome,
        ['-p', 'say pong'],
        { otelHeadersHelper: `${BINARY} headers` },
        {
          CLAUDE_CODE_ENABLE_TELEMETRY: '1',
          OTEL_METRICS_EXPORTER: 'otlp',
          OTEL_LOGS_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
          OTEL_METRIC_EXPORT_INTERVAL: '1000',
          OTEL_LOGS_EXPORT_INTERVAL: '1000',
        },
      );
      expect(result.code, result.stderr).toBe(0);
      console.info(
        `the collector saw: ${collector.log.map((record) => `${record.path} ${record.authorized ? 'with the key' : String(record.authorization)} -> ${record.status}`).join('; ')}`,
      );
      const exports = collector.log.filter((record) => record.path.startsWith('/v1/'));
      expect(exports.length).toBeGreaterThan(0);
      expect(exports.filter((record) => record.authorized && record.status === 200).length).toBeGreaterThan(0);
      expect(exports.filter((record) => !record.authorized)).toEqual([]);
    } finally {
      await collector.stop();
    }
  }, 300_000);
});

interface Collector {
  url: string;
  log: { path: string; authorization: string | undefined; authorized: boolean; status: number }[];
  stop(): Promise<void>;
}

/** An OTLP/HTTP collector that answers 401 to any export without `Authorization: <required>`. */
async function startCollector(required: string): Promise<Collector> {
  const log: Collector['log'] = [];
  const server = http.createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      const authorization = request.headers['authorization'];
      const authorized = authorization === required;
      const status = authorized ? 200 : 401;
      log.push({ path: request.url ?? '', authorization, authorized, status });
      response.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    stop: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}
