// Anthropic's own gateway (the Claude apps gateway in the `claude` binary), run for real:
// PostgreSQL, oidc-provider as the company IdP, a fake Anthropic upstream and `claude gateway`
// (test/support/apps-gateway.ts). Through the built binary: sign in to the gateway itself (its
// RFC 8414 metadata, its device flow completed on its own pages), serve its session token to every
// caller as a key, a Messages call with it, and the end of the session: exit 4, never a stale token.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { runBinary } from '../support/binary.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { deviceLogin } from '../support/sso.ts';
import { startFakeVault } from '../fakes/vault.ts';
import { appsGatewayConfig, ORG_KEY, startAppsGateway, type AppsGateway } from '../support/apps-gateway.ts';

const FOREIGN_KEY = 'sk-test-not-issued-by-the-gateway';
let gateway: AppsGateway;
const homes: TestHome[] = [];

beforeAll(async () => {
  gateway = await startAppsGateway();
}, 120_000);
afterAll(async () => {
  await gateway?.stop();
  for (const home of homes) home.remove();
});

function home(config: unknown): TestHome {
  const made = makeTestHome(config);
  homes.push(made);
  return made;
}

/** A Messages call through the gateway with `token` as Bearer, as Claude Code sends it. */
async function messages(url: string, token: string): Promise<Response> {
  return fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'say pong' }] }),
  });
}

describe('the Claude apps gateway as the sign-in', () => {
  it('login discovers the gateway by its OAuth metadata and signs in with its device flow; get prints its session token; the gateway answers a Messages call with it and the upstream sees only the org key', async () => {
    const testHome = home(appsGatewayConfig(gateway));
    // The browser is opened on the gateway's device page (how the address reaches it is the opener's business).
    const opened = path.join(testHome.dir, 'browser-started');
    const browser = path.join(testHome.dir, 'browser.sh');
    fs.writeFileSync(browser, `#!/bin/sh\ntouch '${opened}'\n`, { mode: 0o755 });
    const login = await deviceLogin(gateway, testHome.env({ BROWSER: browser }), 'alice');
    expect(login.code, login.stderr).toBe(0);
    expect(fs.existsSync(opened)).toBe(true);
    expect(login.stdout).toBe('');
    expect(login.stderr).toContain(`keybroker: to sign in, open ${gateway.url}/device and enter the code `);
    // The gateway issues no refresh token (even with offline_access asked for): login says so.
    expect(login.stderr).toMatch(/issued no refresh token \(a Claude apps gateway issues none\)/);
    expect(login.stderr).not.toMatch(/offline_access/);

    const get = await runBinary(['get'], { env: testHome.env() });
    expect(get.code, get.stderr).toBe(0);
    const token = get.stdout;
    expect(login.stderr).not.toContain(token);
    expect(decodeJwt(token)).toMatchObject({ sub: 'alice', aud: 'claude-gateway' });

    const answer = await messages(gateway.url, token);
    expect(answer.status, await answer.clone().text()).toBe(200);
    const upstreamCalls = gateway.upstream.log.filter((request) => request.path === '/v1/messages');
    expect(upstreamCalls.at(-1)).toMatchObject({ status: 200 });
    expect(upstreamCalls.at(-1)!.xApiKey ?? upstreamCalls.at(-1)!.bearer).toBe(ORG_KEY);
    for (const call of gateway.upstream.log) expect([call.xApiKey, call.bearer]).not.toContain(token);
  }, 180_000);

  it('headers and env print the session token exactly as get does; a 401 re-run (--recheck) with no refresh token exits 4 with the login command and prints nothing', async () => {
    const testHome = home(appsGatewayConfig(gateway));
    expect((await deviceLogin(gateway, testHome.env(), 'bob')).code).toBe(0);
    const token = (await runBinary(['get'], { env: testHome.env() })).stdout;
    expect(decodeJwt(token)).toMatchObject({ sub: 'bob' });

    const headers = await runBinary(['headers'], { env: testHome.env() });
    expect(headers.code, headers.stderr).toBe(0);
    expect(Object.values(JSON.parse(headers.stdout) as Record<string, string>).join(' ')).toContain(token);
    const env = await runBinary(['env', '--format', 'shell', '--key-var', 'ANTHROPIC_AUTH_TOKEN'], { env: testHome.env() });
    expect(env.code, env.stderr).toBe(0);
    expect(env.stdout).toContain(`export ANTHROPIC_BASE_URL='${gateway.url}'\nexport ANTHROPIC_AUTH_TOKEN='${token}'\n`);

    // Claude Code re-runs the helper after a 401: the gateway refused this token, so it is not printed again.
    const recheck = await runBinary(['get', '--recheck'], { env: testHome.env() });
    expect(recheck.code).toBe(4);
    expect(recheck.stdout).toBe('');
    expect(recheck.stderr).toContain('keybroker login');
    expect(recheck.stderr).not.toContain(token);
  }, 180_000);
});

describe('the end of a gateway session', () => {
  let short: AppsGateway;
  beforeAll(async () => {
    // session.ttl_hours takes fractions: 0.01 h is a 36-second session.
    short = await startAppsGateway({ sessionHours: 0.01 });
  }, 120_000);
  afterAll(async () => {
    await short?.stop();
  });

  it('a token within 10 s of its exp is never printed: get exits 4 with the login command once the session ends, and the gateway refuses the last token after its exp', async () => {
    const testHome = home(appsGatewayConfig(short));
    // A caller that keeps a token 2 s: it is served while more than 2 × 2 s + 10 s of the session is left.
    const env = testHome.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '2000' });
    expect((await deviceLogin(short, env, 'carol')).code).toBe(0);
    const first = await runBinary(['get'], { env });
    expect(first.code, first.stderr).toBe(0);
    const exp = decodeJwt(first.stdout).exp! * 1000;
    expect(exp - Date.now()).toBeLessThanOrEqual(36_000);

    // Inside the last 10 s of the session: not printed.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp - 10_000 - Date.now()) + 500));
    const late = await runBinary(['get'], { env });
    expect(late.code).toBe(4);
    expect(late.stdout).toBe('');
    expect(late.stderr).toContain('keybroker login');

    // The gateway itself refuses the token once its exp has passed.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp - Date.now()) + 1_500));
    expect((await messages(short.url, first.stdout)).status).toBe(401);
  }, 180_000);
});

describe('doctor at a Claude apps gateway', () => {
  let checked: AppsGateway;
  beforeAll(async () => {
    checked = await startAppsGateway();
  }, 120_000);
  afterAll(async () => {
    await checked?.stop();
  });

  interface Report {
    checks: { id: string; verdict: string; finding: string; fix: string; details: Record<string, unknown> }[];
  }
  const doctor = async (env: NodeJS.ProcessEnv) => {
    const run = await runBinary(['doctor', '--json'], { env });
    const report = JSON.parse(run.stdout) as Report;
    return { run, report, check: (id: string) => report.checks.find((check) => check.id === id)! };
  };

  it('recognises the gateway, says Claude Code and Desktop sign in natively, streams with the signed-in token; then names the upstream and the IdP going down; a stored key is never sent to it', async () => {
    const testHome = home(appsGatewayConfig(checked));
    expect((await deviceLogin(checked, testHome.env(), 'dora')).code).toBe(0);
    const env = testHome.env();
    const token = (await runBinary(['get'], { env })).stdout;

    const healthy = await doctor(env);
    expect(healthy.check('sso.discovery')).toMatchObject({ verdict: 'OK' });
    expect(healthy.check('sso.discovery').finding).toContain('a Claude apps gateway, protocol 1');
    expect(healthy.check('sso.sign-in')).toMatchObject({ verdict: 'WARN' });
    expect(healthy.check('sso.sign-in').finding).toContain('signed in without a refresh token');
    const apps = healthy.check('gateway.apps-gateway');
    // Plain HTTP on loopback: everything else is ready, but Claude Code's /login wants HTTPS on a private network.
    expect(apps.verdict, apps.finding).toBe('WARN');
    expect(apps.finding).toContain(`${checked.url} is a Claude apps gateway (protocol 1)`);
    expect(apps.finding).toContain('Claude Code and the Claude Desktop app sign in to it natively');
    expect(apps.finding).toContain('is not HTTPS');
    expect(apps.details).toMatchObject({ healthz: 200, keySent: true, addressAccepted: false });
    expect(healthy.check('gateway.models')).toMatchObject({ verdict: 'OK' });
    expect(healthy.check('gateway.streaming')).toMatchObject({ verdict: 'OK' });
    for (const output of [healthy.run.stdout, healthy.run.stderr]) expect(output).not.toContain(token);

    // A profile with a stored key pointed at the gateway: doctor recognises it and sends the key nowhere.
    const vault = await startFakeVault();
    vault.mountKv('secret', 2);
    await vault.kvPut('claude-code/keys/dora', { api_key: FOREIGN_KEY });
    const store = { type: 'vault', address: vault.address, mount: 'secret', auth: { method: 'oidc', role: 'developer' } };
    const keyed = home({
      profiles: { default: { store, secret: 'claude-code/keys/dora', gateway: checked.url, cache: { backend: 'none' } } },
    });
    fs.writeFileSync(path.join(keyed.dir, '.vault-token'), vault.rootToken, { mode: 0o600 });
    const seen = checked.upstream.log.length;
    const foreign = await doctor(keyed.env());
    await vault.stop();
    expect(foreign.check('gateway.apps-gateway')).toMatchObject({ verdict: 'WARN', details: { keySent: false } });
    expect(foreign.check('gateway.apps-gateway').finding).toContain('takes only the session tokens it issues');
    expect(foreign.check('gateway.streaming').verdict).toBe('SKIP');
    expect(foreign.check('gateway.models').verdict).toBe('SKIP');
    expect(checked.output()).not.toContain(FOREIGN_KEY);
    expect(checked.upstream.log.length).toBe(seen);

    // The upstream down: the gateway is still healthy, the streamed message through it is not.
    await checked.upstream.stop();
    const noUpstream = await doctor(env);
    expect(noUpstream.check('gateway.apps-gateway').verdict).toBe('WARN');
    expect(noUpstream.check('gateway.streaming').verdict).toBe('FAIL');

    // The IdP down: a developer cannot sign in.
    await checked.op.stop();
    const noIdp = await doctor(env);
    expect(noIdp.check('gateway.apps-gateway').verdict, noIdp.check('gateway.apps-gateway').finding).toBe('FAIL');
    expect(noIdp.check('gateway.apps-gateway').finding).toContain(
      `its identity provider ${checked.op.issuer}, where developers sign in, did not answer`,
    );
  }, 180_000);
});

describe('setup for a Claude apps gateway', () => {
  it("setup --managed --apps-gateway prints the managed settings for Claude Code's native sign-in there (no apiKeyHelper); plain HTTP is refused; --write merges them and refuses (or with --force removes) an apiKeyHelper", async () => {
    const testHome = home({
      profiles: { default: { oidc: { issuer: 'https://claude-gateway.corp.example', clientId: 'keybroker', flow: 'device' } } },
    });
    const printed = await runBinary(['setup', '--managed', '--apps-gateway', 'https://claude-gateway.corp.example/'], {
      env: testHome.env(),
    });
    expect(printed.code, printed.stderr).toBe(0);
    expect(JSON.parse(printed.stdout)).toEqual({
      forceLoginMethod: 'gateway',
      forceLoginGatewayUrl: 'https://claude-gateway.corp.example',
      parentSettingsBehavior: 'merge',
    });
    expect(printed.stderr).toContain('leave apiKeyHelper and ANTHROPIC_API_KEY out of them');
    const plain = await runBinary(['setup', '--managed', '--apps-gateway', 'http://claude-gateway.corp.example'], { env: testHome.env() });
    expect(plain).toMatchObject({ code: 2, stdout: '' });
    expect(plain.stderr).toContain('only over HTTPS on a private network');
    // --write: merged into the managed file, 0644, other keys kept; an apiKeyHelper there is refused, or removed with --force.
    const managed = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kb-managed-')), 'managed-settings.json');
    const env = testHome.env({ KEYBROKER_CLAUDE_MANAGED_SETTINGS: managed });
    fs.writeFileSync(managed, JSON.stringify({ apiKeyHelper: '/usr/bin/keybroker', permissions: { deny: ['WebFetch'] } }));
    const refused = await runBinary(['setup', '--managed', '--write', '--apps-gateway', 'https://claude-gateway.corp.example'], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('Claude Code refuses to start');
    expect(JSON.parse(fs.readFileSync(managed, 'utf8'))).toEqual({
      apiKeyHelper: '/usr/bin/keybroker',
      permissions: { deny: ['WebFetch'] },
    });
    const forced = await runBinary(['setup', '--managed', '--write', '--force', '--apps-gateway', 'https://claude-gateway.corp.example'], {
      env,
    });
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(managed, 'utf8'))).toEqual({
      permissions: { deny: ['WebFetch'] },
      forceLoginMethod: 'gateway',
      forceLoginGatewayUrl: 'https://claude-gateway.corp.example',
      parentSettingsBehavior: 'merge',
    });
    expect(fs.statSync(managed).mode & 0o777).toBe(0o644);
    expect(forced.stderr).toMatch(/backup at .*removed apiKeyHelper/);
    const again = await runBinary(['setup', '--managed', '--write', '--apps-gateway', 'https://claude-gateway.corp.example'], { env });
    expect(again.stderr).toContain('already has these settings; not written, no backup');
    fs.rmSync(path.dirname(managed), { recursive: true, force: true });
  });
});
