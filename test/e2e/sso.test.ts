// Issue 12, must-show 1 and 3, through the built binary: a real OpenID Provider (oidc-provider),
// a gateway that accepts only JWTs its JWKS signed for it, `keybroker login` (device flow on the
// OP's own pages; browser flow through a $BROWSER script), the real Claude Code completing
// `claude -p` with the token from `get`, a 401 re-run forcing one refresh, and offboarding with
// 20-second tokens (account disabled → exit 4 with the login command; the gateway refuses the last
// token once it expires; nothing works after).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { startJwtGateway, type JwtGateway } from '../fakes/jwt-gateway.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { runBinary } from '../support/binary.ts';
import { runClaudeIn, type ClaudeRun } from '../support/claude.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { deviceLogin, ssoConfig } from '../support/sso.ts';
import { makeFakeBrowser } from '../support/fake-browser.ts';

const HELPER_TTL_MS = 20_000;
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

/** `claude -p PROMPT` through the JWT gateway, keybroker as its helper. */
function runClaude(testHome: TestHome, prompt: string, options: { until?: RegExp } = {}): Promise<ClaudeRun> {
  // A TTL that fits the token's lifetime: 2 × 20 s + 10 s of slack < 120 s (README, SSO tokens).
  return runClaudeIn(testHome, ['-p', prompt], {
    gateway: gateway.url,
    settings: { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(HELPER_TTL_MS) } },
    timeoutMs: 60_000,
    ...options,
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
    const browser = makeFakeBrowser(path.join(testHome.dir, 'browser'), { follow: false });
    const child = runBinary(['login'], { env: testHome.env({ BROWSER: browser.script }), timeoutMs: 60_000 });
    while (browser.addresses().length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    const authorizationUrl = browser.addresses()[0]!;
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

  it('a 401 re-run from the same Claude Code process forces one refresh: the real Claude Code completes with the new token', async () => {
    const testHome = home(ssoConfig(op));
    expect((await deviceLogin(op, testHome.env(), 'judy')).code).toBe(0);
    // The login's token, still fresh (120 s token, margin 2 × 20 s + 10 s): Claude Code's first call is served it from the cache.
    const first = await runBinary(['get'], { env: testHome.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(HELPER_TTL_MS) }) });
    expect(first.code, first.stderr).toBe(0);
    const refused = decodeJwt(first.stdout);
    // The gateway stops taking that token although it has not expired (its deny list; an introspecting gateway alike).
    gateway.revoke(refused.jti!);
    const from = gateway.log.length;
    const refreshes = () => op.tokens.filter((request) => request.grantType === 'refresh_token').length;
    const before = refreshes();

    const result = await runClaude(testHome, 'say pong');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('pong');
    const keyed = gateway.log.slice(from).filter((request) => request.verdict !== 'unauthenticated-path');
    const trace = keyed.map(
      (request) =>
        `${request.method} ${request.path} ${request.jti === refused.jti ? 'refused token' : request.jti ? 'new token' : 'no token'} -> ${request.status} ${request.verdict}`,
    );
    console.info(`the gateway saw:\n${trace.join('\n')}`);
    // One refusal of the revoked token, then Claude Code re-ran keybroker and retried with a new one.
    expect(keyed[0]).toMatchObject({ path: '/v1/messages', jti: refused.jti, status: 401, verdict: 'revoked' });
    expect(keyed.filter((request) => request.status === 401)).toHaveLength(1);
    const after = keyed.slice(1);
    expect(after.length).toBeGreaterThan(0);
    for (const request of after) expect(request).toMatchObject({ verdict: 'ok', sub: 'judy', status: 200 });
    expect(new Set(after.map((request) => request.jti)).size).toBe(1);
    expect(after[0]!.jti).not.toBe(refused.jti);
    // keybroker took the second call for a 401 re-run: exactly one refresh at the OP (the token was
    // still fresh, so without the re-run rule it would have served the refused token again).
    expect(refreshes() - before).toBe(1);
  }, 180_000);

  it('a revoked grant: the refresh a 401 forces fails with exit 4 and the login command, and the still-fresh cached token is not served any more', async () => {
    const testHome = home(ssoConfig(op));
    const env = testHome.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(HELPER_TTL_MS) });
    expect((await deviceLogin(op, env, 'carol')).code).toBe(0);
    const last = await runBinary(['get'], { env });
    expect(last.code, last.stderr).toBe(0);
    expect(await op.revokeGrants('carol')).toBeGreaterThan(0);
    // --recheck: the refresh a 401 forces; without one the token is fresh for 120 − 50 s after its login.
    const refused = await runBinary(['get', '--recheck'], { env });
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/invalid_grant.*run keybroker login --profile default\n$/);
    // The identity provider ended the sign-in: the cached token, fresh by its exp, is not handed out again.
    const again = await runBinary(['get'], { env });
    expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 4, stdout: '' });
    expect(again.stderr).toMatch(/invalid_grant.*run keybroker login --profile default\n$/);
    expect(Date.now()).toBeLessThan(decodeJwt(last.stdout).exp! * 1000 - 2 * HELPER_TTL_MS - 10_000);
  });

  it('get without a login exits 4 with the login command, and never prompts', async () => {
    const testHome = home(ssoConfig(op));
    const result = await runBinary(['get'], { env: testHome.env() });
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`keybroker: profile "default" is not signed in to ${op.issuer}: run keybroker login --profile default\n`);
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
    expect(verdicts).toMatchObject({
      configuration: 'OK',
      'sso.discovery': 'OK',
      'sso.sign-in': 'OK',
      'sso.token': 'OK',
      'gateway.models': 'OK',
    });
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
    const tooLong = JSON.parse(
      (await runBinary(['doctor', '--json'], { env: { ...env, CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' } })).stdout,
    ) as typeof report;
    const check = tooLong.checks.find((item) => item.id === 'sso.token')! as { verdict: string; fix?: string };
    expect(check.verdict).toBe('WARN');
    expect(check.fix).toContain('CLAUDE_CODE_API_KEY_HELPER_TTL_MS to at most 54000');
  });

  it("token exchange (RFC 8693): get serves the gateway's own token, traded for the IdP's, never living past it", async () => {
    // A gateway token service: takes a valid IdP access token, answers a token for its own audience.
    const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
    const exchanges: Record<string, string>[] = [];
    const sts = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', async () => {
        const params = Object.fromEntries(new URLSearchParams(body));
        exchanges.push({
          grant_type: params['grant_type']!,
          audience: params['audience']!,
          subject_token_type: params['subject_token_type']!,
        });
        try {
          await jwtVerify(params['subject_token']!, jwks, { issuer: op.issuer, audience: op.resource });
        } catch {
          response.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant' }));
          return;
        }
        response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        response.end(
          JSON.stringify({
            access_token: `gw-test-${exchanges.length}-exchanged`,
            token_type: 'Bearer',
            expires_in: 3600,
            issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
          }),
        );
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
      expect(exchanges.at(-1)).toEqual({
        grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
        audience: 'llm-gateway',
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      });
      // 3600 s asked, but never past the IdP token it came from (120 s here).
      const status = JSON.parse((await runBinary(['status', '--json'], { env: testHome.env() })).stdout) as {
        cached: { expiresAt: string };
      };
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
    expect(logout.stdout).toMatch(
      /removed the sign-in \(refresh token\) from the file cache; removed the cached access token from the file cache/,
    );
    const get = await runBinary(['get'], { env: testHome.env() });
    expect(get.code).toBe(4);
  });
});

describe('offboarding with 20-second access tokens', () => {
  const TOKEN_TTL_S = 20;
  // Claude Code's TTL for such tokens: the freshness margin 2 × 2 s + 10 s leaves each token 6 s fresh.
  const SHORT_TTL_MS = 2_000;
  const MARGIN_MS = 2 * SHORT_TTL_MS + 10_000;
  let shortOp: TestOp;
  let shortGateway: JwtGateway;
  beforeAll(async () => {
    shortOp = await startTestOp({ accessTokenTtl: TOKEN_TTL_S });
    shortGateway = await startJwtGateway({
      issuer: shortOp.issuer,
      audience: shortOp.resource,
      upstream: upstream.url,
      upstreamKey: UPSTREAM_KEY,
    });
  });
  afterAll(async () => {
    await Promise.all([shortOp?.stop(), shortGateway?.stop()]);
  });

  const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
  const gatewayAnswer = async (token: string) =>
    (await fetch(`${shortGateway.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } })).status;

  it('the account disabled at the OP: the next refresh exits 4 with the login command, the gateway takes the last token until its exp and then refuses it, and nothing works after', async () => {
    const testHome = home(ssoConfig(shortOp));
    const env = testHome.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(SHORT_TTL_MS) });
    const claude = (until?: RegExp) =>
      runClaudeIn(testHome, ['-p', 'say pong'], {
        gateway: shortGateway.url,
        settings: { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(SHORT_TTL_MS) } },
        timeoutMs: 120_000,
        ...(until ? { until } : {}),
      });
    const refreshes = () => shortOp.tokens.filter((request) => request.grantType === 'refresh_token');
    const timeline: string[] = [];
    const started = Date.now();
    const mark = (what: string) => timeline.push(`${((Date.now() - started) / 1000).toFixed(1)} s  ${what}`);

    // Working: signed in, Claude Code gets through the gateway.
    expect((await deviceLogin(shortOp, env, 'kim')).code).toBe(0);
    const working = await claude();
    expect(working.code, working.stderr).toBe(0);
    expect(working.stdout).toContain('pong');
    mark('claude -p completed');
    const served = await runBinary(['get'], { env });
    expect(served.code, served.stderr).toBe(0);
    const last = served.stdout;
    const exp = decodeJwt(last).exp! * 1000;
    mark(`get printed the last token (${Math.round((exp - Date.now()) / 1000)} s left)`);

    // Offboarding: the account is disabled at the identity provider.
    shortOp.disable('kim');
    mark('account disabled at the OP');
    // keybroker prints no token with under 10 s left, so the gateway still takes this one.
    expect(await gatewayAnswer(last)).toBe(200);

    // The next get that needs a refresh: once the last token has less than the margin left.
    await sleepUntil(exp - MARGIN_MS + 100);
    const refusedAt = refreshes().length;
    const refused = await runBinary(['get'], { env });
    mark(`get exited ${refused.code}`);
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(
      /^keybroker: http:\/\/127\.0\.0\.1:\d+ refused the sign-in for profile "default" \(invalid_grant[^\n]*: run keybroker login --profile default\n$/,
    );
    expect(refreshes().slice(refusedAt)).toMatchObject([{ status: 400, error: 'invalid_grant' }]);

    // The gateway takes the last token until its exp (it checks the signature and exp, not the OP)...
    const beforeExp = await gatewayAnswer(last);
    mark(`gateway answered the last token ${beforeExp}`);
    expect(Date.now()).toBeLessThan(exp);
    expect(beforeExp).toBe(200);
    // ...and refuses it once it has expired.
    await sleepUntil(exp + 1_000);
    expect(await gatewayAnswer(last)).toBe(401);
    expect(shortGateway.log.at(-1)).toMatchObject({ verdict: 'expired', status: 401 });
    mark('gateway refused the last token: expired');

    // After that nothing works: get keeps exiting 4 and never prints the expired token...
    for (let run = 0; run < 2; run++) {
      const after = await runBinary(['get'], { env });
      expect({ code: after.code, stdout: after.stdout }).toEqual({ code: 4, stdout: '' });
      expect(after.stderr).toContain('run keybroker login --profile default');
    }
    mark('get exited 4 twice more');
    // ...and the real Claude Code fails with keybroker's line, no request of it accepted.
    const from = shortGateway.log.length;
    const failing = await claude(/apiKeyHelper failed: exited 4: keybroker: [^\n]*run keybroker login --profile default/);
    mark(`claude -p stopped after ${Math.round(failing.ms)} ms`);
    expect(failing.stdout + failing.stderr).toMatch(
      /apiKeyHelper failed: exited 4: keybroker: [^\n]*refused the sign-in[^\n]*run keybroker login --profile default/,
    );
    expect(failing.stdout).not.toContain('pong');
    expect(shortGateway.log.slice(from).filter((request) => request.verdict === 'ok')).toEqual([]);
    // Not one refresh succeeded after the account was disabled.
    expect(
      refreshes()
        .slice(refusedAt)
        .filter((request) => request.status === 200),
    ).toEqual([]);
    console.info(`offboarding timeline (token exp at ${((exp - started) / 1000).toFixed(1)} s):\n${timeline.join('\n')}`);
  }, 240_000);
});
