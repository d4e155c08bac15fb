// A Streamable HTTP MCP server of protocol revision 2025-06-18 (JSON responses, no SSE stream, no
// sessions) that records every request's headers and refuses, with 401 or 403, requests whose
// Authorization is not one it accepts. Claude Code 2.1.332 speaks 2026-07-28 first: it probes with
// `server/discover` (header MCP-Protocol-Version: 2026-07-28), which this server, like any server of
// an earlier revision, answers JSON-RPC -32601 Method not found; the client then falls back to the
// initialize handshake (it logs protocolEra "legacy", negotiated 2025-06-18).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

interface McpRequestRecord {
  method: string;
  path: string;
  authorization: string | undefined;
  headers: http.IncomingHttpHeaders;
  rpc: string | undefined;
  status: number;
}

export interface FakeMcpServer {
  url: string;
  log: McpRequestRecord[];
  /** Which requests are answered normally (by Authorization and JSON-RPC method); the others get `status` (401 or 403). */
  accept(policy: (authorization: string | undefined, rpc: string | undefined) => boolean, status?: 401 | 403): void;
  /** Tool calls answered so far, by tool name. */
  calls: string[];
  stop(): Promise<void>;
}

export async function startFakeMcpServer(): Promise<FakeMcpServer> {
  const log: McpRequestRecord[] = [];
  let accepted: (authorization: string | undefined, rpc: string | undefined) => boolean = () => true;
  const calls: string[] = [];
  let refusal: 401 | 403 = 401;
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      let rpc: { id?: unknown; method?: string; params?: { name?: string } } | undefined;
      try {
        rpc = body ? JSON.parse(body) : undefined;
      } catch {
        rpc = undefined;
      }
      const authorization = request.headers['authorization'];
      const record: McpRequestRecord = {
        method: request.method ?? '',
        path: request.url ?? '',
        authorization,
        headers: request.headers,
        rpc: rpc?.method,
        status: 0,
      };
      log.push(record);
      const answer = (status: number, json?: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        response.writeHead(status, json === undefined ? headers : { 'content-type': 'application/json', ...headers });
        response.end(json === undefined ? undefined : JSON.stringify(json));
      };
      if (!(request.url ?? '').startsWith('/mcp')) return answer(404, { error: 'not found' });
      if (!accepted(authorization, rpc?.method)) {
        // RFC 6750: a 401 names the scheme and the error; no resource_metadata, as this server offers no OAuth.
        return answer(
          refusal,
          { error: 'invalid_token' },
          refusal === 401 ? { 'www-authenticate': 'Bearer realm="capture", error="invalid_token"' } : {},
        );
      }
      if (request.method !== 'POST') return answer(405, undefined, { allow: 'POST' });
      if (!rpc || rpc.id === undefined) return answer(202);
      if (!['initialize', 'tools/list', 'tools/call', 'ping'].includes(rpc.method ?? '')) {
        return answer(200, { jsonrpc: '2.0', id: rpc.id, error: { code: -32601, message: `Method not found: ${rpc.method}` } });
      }
      const result =
        rpc.method === 'initialize'
          ? { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'capture', version: '1.0.0' } }
          : rpc.method === 'tools/list'
            ? { tools: [{ name: 'echo', description: 'echoes', inputSchema: { type: 'object', properties: {} } }] }
            : rpc.method === 'tools/call'
              ? (calls.push(String(rpc.params?.name)), { content: [{ type: 'text', text: 'echoed' }] })
              : {};
      answer(200, { jsonrpc: '2.0', id: rpc.id, result });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    log,
    calls,
    accept: (policy, status = 401) => void ((accepted = policy), (refusal = status)),
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
