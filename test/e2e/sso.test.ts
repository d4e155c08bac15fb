// Issue 12, must-show 1 and 3, through the built binary: a real OpenID Provider (oidc-provider),
// a gateway that accepts only JWTs its JWKS signed for it, `keybroker login` (device flow on the
// OP's own pages; browser flow through a $BROWSER script), the real Claude Code completing
// `claude -p` with the token from `get`, and offboarding (grant revoked → exit 4 with the login command).
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { startJwtGateway, type JwtGateway } from '../fakes/jwt-gateway.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { deviceLogin, ssoConfig } from '../support/sso.ts';

const CLAUDE = path.resolve(import.meta.dirname, '../../node_modules/.bin/claude');
const UPSTREAM_KEY = 'sk-test-sso-upstream';

let op: TestOp;
let upstream: FakeGateway;
let gateway: JwtGateway;
const homes: TestHome[] = [];

beforeAll(async () => {
  [op, upstream] = await Promise.all([startTestOp({ accessTokenTtl: 120 }), startFakeGateway({ keys: [UPSTREAM_KEY] })]);
  gateway = await startJwtGateway({ issuer: op.issuer, audience: op.resource, upstream: upstream.url, upstreamKey: UPSTREAM_KEY });
});
afterAll(async () => {
  await Promise.all([op?.stop(), upstream?.stop(), gateway?.stop()]);
  for (const home of homes) home.remove();
});

function home(config: unknown): TestHome {
  const made = makeTestHome(config);
  homes.push(made);
  return made;
}

function runClaude(testHome: TestHome, prompt: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  fs.mkdirSync(path.join(testHome.dir, '.claude'), { recursive: true });
  // A TTL that fits the token's lifetime: 2 × 20 s + 10 s of slack < 120 s (README, SSO tokens).
  const settings = { apiKeyHelper: BINARY, env: { KEYBROKER_CONFIG: testHome.configFile, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '20000' } };
  fs.writeFileSync(path.join(testHome.dir, '.claude', 'settings.json'), JSON.stringify(settings));
  const env = {
    ...testHome.env(),
    KEYBROKER_CONFIG: undefined,
    ANTHROPIC_BASE_URL: gateway.url,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_AUTOUPDATER: '1',
  };
  return new Promise((resolve, reject) => {
    const child = spawn(CLAUDE, ['-p', prompt], { env, cwd: testHome.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('SSO tokens from a real OpenID Provider', () => {
  it('device login, then the real Claude Code completes claude -p through a JWT-validating gateway', async () => {
    const testHome = home(ssoConfig(op));
    const login = await deviceLogin(op, testHome.env(), 'alice');
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toMatch(/keybroker: to sign in, open http:\/\/127\.0\.0\.1:\d+\/device and enter the code \S+/);
    expect(login.stdout).toBe('');
    const token = (await runBinary(['get'], { env: testHome.env() })).stdout;
    // The refresh token and the access token never reach stdout/stderr of login.
    expect(login.stderr).not.toContain(token);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'alice', aud: op.resource, iss: op.issuer });

    // Nothing kept in plaintext but where the profile said (the private file cache).
    for (const file of testHome.files()) {
      if (file.includes(`${path.sep}keys${path.sep}`)) continue;
      if (file.endsWith('keybroker.json') || file.includes('.claude')) continue;
      expect(fs.readFileSync(path.join(testHome.dir, file), 'utf8'), file).not.toContain(token);
    }

    const before = gateway.log.length;
    const tokenRequests = op.tokens.length;
    const result = await runClaude(testHome, 'say pong');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('pong');
    const messages = gateway.log.slice(before).filter((request) => request.path === '/v1/messages');
    expect(messages.length).toBeGreaterThan(0);
    for (const request of messages) expect(request).toMatchObject({ verdict: 'ok', sub: 'alice', status: 200 });
    // Served from the cache: Claude Code's get did not ask the OP.
    expect(op.tokens.length).toBe(tokenRequests);
   }, 180_000);

  it('browser login (authorization code + PKCE, loopback redirect) through a $BROWSER script', async () => {
    const testHome = home(ssoConfig(op, { flow: 'browser' }));
    const opened = path.join(testHome.dir, 'opened-url');
    const script = path.join(testHome.dir, 'browser.sh');
    fs.writeFileSync(script, `#!/bin/sh\nprintf %s "$1" > '${opened}.tmp' && mv '${opened}.tmp' '${opened}'\n`, { mode: 0o755 });
    const child = runBinary(['login'], { env: testHome.env({ BROWSER: script }), timeoutMs: 60_000 });
    while (!fs.existsSync(opened)) await new Promise((resolve) => setTimeout(resolve, 50));
    const authorizationUrl = fs.readFileSync(opened, 'utf8');
    expect(new URL(authorizationUrl).searchParams.get('code_challenge_method')).toBe('S256');
    const redirect = await op.completeBrowserLogin(authorizationUrl, 'bob');
    expect(redirect).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
    await fetch(redirect);
    const login = await child;
    expect(login.code, login.stderr).toBe(0);
    const get = await runBinary(['get'], { env: testHome.env() });
    expect(get.code, get.stderr).toBe(0);
    expect(decodeJwt(get.stdout)).toMatchObject({ sub: 'bob', aud: op.resource });
  });

  it('offboarding: the grant revoked at the OP → the next refresh fails with exit 4 and the login command; the last token is never renewed', async () => {
    const testHome = home(ssoConfig(op));
    expect((await deviceLogin(op, testHome.env(), 'carol')).code).toBe(0);
    const last = (await runBinary(['get'], { env: testHome.env() })).stdout;
    expect(await op.revokeGrants('carol')).toBeGreaterThan(0);
    // --recheck: the refresh a 401 would force; without it the cached token is served until its margin.
    const refused = await runBinary(['get', '--recheck'], { env: testHome.env() });
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/invalid_grant.*run keybroker login --profile default\n$/);
    // The OP revoked the grant's access tokens too; the gateway here checks signatures and exp only,
    // so the last token stops working at its exp (what a JWT gateway does): it is never refreshed.
    const exp = decodeJwt(last).exp!;
    expect(exp * 1000).toBeGreaterThan(Date.now());
  });

  it('a disabled account at the OP: exit 4 with the login command', async () => {
    const testHome = home(ssoConfig(op));
    expect((await deviceLogin(op, testHome.env(), 'dave')).code).toBe(0);
    op.disable('dave');
    const refused = await runBinary(['get', '--recheck'], { env: testHome.env() });
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('run keybroker login --profile default');
  });

  it('get without a login exits 4 with the login command, and never prompts', async () => {
    const testHome = home(ssoConfig(op));
    const result = await runBinary(['get'], { env: testHome.env() });
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('keybroker: profile "default" is not signed in to ' + op.issuer + ': run keybroker login --profile default\n');
  });

  it('without a keychain and without "fallback": "file", login refuses to keep the refresh token anywhere', async () => {
    const testHome = home(ssoConfig(op, {}, { cache: { backend: 'auto', fallback: 'none' } }));
    const env = testHome.env({ DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent' });
    const login = await deviceLogin(op, env, 'erin');
    expect(login.code).toBe(9);
    expect(login.stderr).toContain('"fallback": "file"');
    expect(testHome.files().filter((file) => file.includes(`keybroker${path.sep}keys`))).toEqual([]);
  });

  it('doctor checks the issuer, the sign-in and the token (audience, seconds left, lifetime against the TTL), then the gateway with it; status shows the token; neither prints a token', async () => {
    const testHome = home(ssoConfig(op));
    expect((await deviceLogin(op, testHome.env(), 'gina')).code).toBe(0);
    const env = testHome.env({ ANTHROPIC_BASE_URL: gateway.url, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '20000' });
    const token = (await runBinary(['get'], { env })).stdout;
    const doctor = await runBinary(['doctor', '--json'], { env });
    const report = JSON.parse(doctor.stdout) as { checks: { id: string; verdict: string; finding: string }[] };
    const verdicts = Object.fromEntries(report.checks.map((check) => [check.id, check.verdict]));
    expect(verdicts).toMatchObject({ configuration: 'OK', 'sso.discovery': 'OK', 'sso.sign-in': 'OK', 'sso.token': 'OK', 'gateway.models': 'OK' });
    expect(Object.keys(verdicts).filter((id) => id.startsWith('store.'))).toEqual([]);
    const finding = (id: string) => report.checks.find((check) => check.id === id)!.finding;
    expect(finding('sso.discovery')).toContain(`${op.issuer} answered discovery`);
    expect(finding('sso.sign-in')).toMatch(/a refresh token is kept in the private file cache/);
    expect(finding('sso.token')).toMatch(new RegExp(`for gina, audience ${op.resource.replace(/[./]/g, '\\$&')}; \\d+ s left`));
    const status = await runBinary(['status'], { env });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`oidc (issuer ${op.issuer})`);
    for (const output of [doctor.stdout, doctor.stderr, status.stdout, status.stderr]) expect(output).not.toContain(token);

    // A TTL the token cannot outlive: doctor says which TTL would fit.
    const tooLong = JSON.parse((await runBinary(['doctor', '--json'], { env: { ...env, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' } })).stdout) as typeof report;
    const check = tooLong.checks.find((item) => item.id === 'sso.token')! as { verdict: string; fix?: string };
    expect(check.verdict).toBe('WARN');
    expect(check.fix).toContain('CLAUDE_CODE_API_KEY_HELPER_TTL_MS to at most 55000');
  });

  it('token exchange (RFC 8693): get serves the gateway\'s own token, traded for the IdP\'s, never living past it', async () => {
    // A gateway token service: takes a valid IdP access token, answers a token for its own audience.
    const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
    const exchanges: Record<string, string>[] = [];
    const sts = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', async () => {
        const params = Object.fromEntries(new URLSearchParams(body));
        exchanges.push({ grant_type: params['grant_type']!, audience: params['audience']!, subject_token_type: params['subject_token_type']! });
        try {
          await jwtVerify(params['subject_token']!, jwks, { issuer: op.issuer, audience: op.resource });
        } catch {
          response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        response.end(JSON.stringify({ access_token: `gw-test-${exchanges.length}-exchanged`, token_type: 'Bearer', expires_in: 3600, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' }));
      });
    });
    await new Promise<void>((resolve) => sts.listen(0, '127.0.0.1', resolve));
    try {
      const tokenEndpoint = `http://127.0.0.1:${(sts.address() as AddressInfo).port}/token`;
      const testHome = home(ssoConfig(op, { exchange: { tokenEndpoint, audience: 'llm-gateway' } }));
      expect((await deviceLogin(op, testHome.env(), 'hana')).code).toBe(0);
      const get = await runBinary(['get'], { env: testHome.env() });
      expect(get.code, get.stderr).toBe(0);
      expect(get.stdout).toMatch(/^gw-test-\d+-exchanged$/);
      expect(exchanges.at(-1)).toEqual({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', audience: 'llm-gateway', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
      // 3600 s asked, but never past the IdP token it came from (120 s here).
      const status = JSON.parse((await runBinary(['status', '--json'], { env: testHome.env() })).stdout) as { cached: { expiresAt: string } };
      expect(Date.parse(status.cached.expiresAt) - Date.now()).toBeLessThanOrEqual(120_000);
    } finally {
      sts.closeAllConnections();
      await new Promise((resolve) => sts.close(resolve));
    }
  });

  it('logout removes the refresh and access tokens: get then asks for a login', async () => {
    const testHome = home(ssoConfig(op));
    expect((await deviceLogin(op, testHome.env(), 'frank')).code).toBe(0);
    const logout = await runBinary(['logout'], { env: testHome.env() });
    expect(logout.code, logout.stderr).toBe(0);
    expect(logout.stdout).toMatch(/removed the sign-in \(refresh token\) from the file cache; removed the cached access token from the file cache/);
    const get = await runBinary(['get'], { env: testHome.env() });
    expect(get.code).toBe(4);
  });
});
