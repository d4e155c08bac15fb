// An LLM gateway that authenticates with the company's IdP tokens, as LiteLLM's JWT auth, Kong's
// OpenID Connect plugin or Portkey do: the bearer (or x-api-key) must be a JWT signed by a key in
// the issuer's JWKS, with the gateway as audience and not expired (no clock tolerance). Accepted
// requests go on to an upstream Anthropic-style gateway with the gateway's own key.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';

interface JwtGatewayRequest {
  at: number;
  method: string;
  path: string;
  verdict: 'ok' | 'expired' | 'revoked' | 'invalid' | 'missing' | 'unauthenticated-path';
  sub?: string;
  jti?: string;
  exp?: number;
  status: number;
}

export interface JwtGateway {
  url: string;
  log: JwtGatewayRequest[];
  /** Refuses a still-valid token from now on by its jti (a gateway's deny list, or introspection saying inactive). */
  revoke(jti: string): void;
  stop(): Promise<void>;
}

const ANTHROPIC_ERROR = (message: string) => JSON.stringify({ type: 'error', error: { type: 'authentication_error', message } });

export async function startJwtGateway(options: {
  issuer: string;
  audience: string;
  upstream: string;
  upstreamKey: string;
}): Promise<JwtGateway> {
  const jwks = createRemoteJWKSet(new URL(`${options.issuer}/jwks`));
  const log: JwtGatewayRequest[] = [];
  const revoked = new Set<string>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const url = new URL(request.url ?? '/', 'http://gateway');
      const entry: JwtGatewayRequest = {
        at: Date.now(),
        method: request.method ?? 'GET',
        path: url.pathname,
        verdict: 'missing',
        status: 0,
      };
      log.push(entry);
      const refuse = (verdict: JwtGatewayRequest['verdict'], message: string) => {
        entry.verdict = verdict;
        entry.status = 401;
        response.writeHead(401, { 'content-type': 'application/json' }).end(ANTHROPIC_ERROR(message));
      };
      // Claude Code's connectivity probe carries no credential.
      const open = url.pathname === '/' && (request.method === 'HEAD' || request.method === 'GET');
      if (open) entry.verdict = 'unauthenticated-path';
      else {
        const authorization = request.headers['authorization'];
        const token =
          (typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : undefined) ??
          (request.headers['x-api-key'] as string | undefined);
        if (!token) return refuse('missing', 'no token');
        try {
          const { payload } = await jwtVerify(token, jwks, { issuer: options.issuer, audience: options.audience, clockTolerance: 0 });
          entry.verdict = 'ok';
          if (payload.sub) entry.sub = payload.sub;
          if (payload.jti) entry.jti = payload.jti;
          if (payload.exp) entry.exp = payload.exp;
          if (payload.jti && revoked.has(payload.jti)) return refuse('revoked', 'token revoked');
        } catch (error) {
          return refuse(
            error instanceof errors.JWTExpired ? 'expired' : 'invalid',
            error instanceof errors.JWTExpired ? 'token expired' : 'invalid token',
          );
        }
      }
      const headers: Record<string, string> = { 'x-api-key': options.upstreamKey };
      if (request.headers['content-type']) headers['content-type'] = String(request.headers['content-type']);
      const upstream = await fetch(new URL(url.pathname + url.search, options.upstream), {
        method: request.method ?? 'GET',
        headers,
        body: chunks.length && request.method !== 'GET' && request.method !== 'HEAD' ? Buffer.concat(chunks) : null,
      });
      entry.status = upstream.status;
      response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
      if (upstream.body) for await (const chunk of upstream.body) response.write(chunk);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    revoke: (jti) => void revoked.add(jti),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
