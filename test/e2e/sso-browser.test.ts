// The SSO browser flow (authorization code + PKCE, loopback redirect) cannot be hijacked by
// another local user, through the built binary against a real OP (oidc-provider): the state and
// the code challenge are in no process's argv (the browser gets a 0600 file:// page), and the
// loopback callback answers a callback with the wrong state 400 and keeps waiting for the real one.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { runBinary, type RunResult } from '../support/binary.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { makeFakeBrowser, type FakeBrowser } from '../support/fake-browser.ts';
import { ssoConfig } from '../support/sso.ts';

let op: TestOp;
const homes: TestHome[] = [];
beforeAll(async () => {
  op = await startTestOp({ accessTokenTtl: 120 });
});
afterAll(async () => {
  for (const home of homes) home.remove();
  await op?.stop();
});

/** `keybroker login --flow browser` running, and the address its page handed the fake browser. */
async function startBrowserLogin(): Promise<{ home: TestHome; browser: FakeBrowser; login: Promise<RunResult>; authorizationUrl: URL }> {
  const home = makeTestHome(ssoConfig(op, { flow: 'browser' }));
  homes.push(home);
  const browser = makeFakeBrowser(path.join(home.dir, 'browser'), { follow: false });
  const login = runBinary(['login'], { env: home.env({ BROWSER: browser.script }), timeoutMs: 60_000 });
  let exited = false;
  void login.then(() => (exited = true));
  while (browser.addresses().length === 0 && !exited) await new Promise((resolve) => setTimeout(resolve, 50));
  if (exited) throw new Error(`login ended before opening a browser: ${(await login).stderr}`);
  return { home, browser, login, authorizationUrl: new URL(browser.addresses()[0]!) };
}

/** Every process's command line on this machine, NUL-separated words joined by spaces. */
function allCommandLines(): string[] {
  const lines: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      lines.push(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' '));
    } catch {
      // gone in the meantime
    }
  }
  return lines;
}

describe('keybroker login --flow browser against another local user', () => {
  it('the browser gets a file:// page (0600, in a 0700 folder of the developer); no argv on the machine holds the state, the code challenge or the address', async () => {
    const { login, browser, authorizationUrl } = await startBrowserLogin();
    const state = authorizationUrl.searchParams.get('state')!;
    const challenge = authorizationUrl.searchParams.get('code_challenge')!;
    expect(state.length).toBeGreaterThan(20);
    expect(challenge.length).toBeGreaterThan(20);

    const [argv] = browser.argv();
    expect(argv).toHaveLength(1);
    expect(argv![0]).toMatch(/^file:\/\/\/.+\.html$/);
    for (const secret of [state, challenge, authorizationUrl.origin, 'redirect_uri']) expect(argv![0]).not.toContain(secret);
    const page = new URL(argv![0]!).pathname;
    const stat = fs.statSync(page);
    expect([stat.uid, stat.mode & 0o777, fs.statSync(path.dirname(page)).mode & 0o777]).toEqual([process.getuid!(), 0o600, 0o700]);
    // While the login waits: what `ps` shows any local user.
    const leaking = allCommandLines().filter((line) => line.includes(state) || line.includes(challenge));
    expect(leaking).toEqual([]);

    const redirect = await op.completeBrowserLogin(authorizationUrl.href, 'carol');
    expect((await fetch(redirect)).status).toBe(200);
    const result = await login;
    expect(result.code, result.stderr).toBe(0);
    // The page goes with the process.
    expect(fs.existsSync(page)).toBe(false);
  });

  it('a forged callback with a wrong state, sent first, is answered 400 and neither ends nor fails the login; the real one completes it', async () => {
    const { home, login, authorizationUrl } = await startBrowserLogin();
    const callback = new URL(authorizationUrl.searchParams.get('redirect_uri')!);
    const codeGrants = () => op.tokens.filter((request) => request.grantType === 'authorization_code');
    const grantsBefore = codeGrants().length;

    const forged = await fetch(`${callback.origin}/callback?code=forged-code-of-mallory&state=forged-state`);
    expect(forged.status).toBe(400);
    expect(await forged.text()).toMatch(/not for the sign-in in progress/);
    const stateless = await fetch(`${callback.origin}/callback?code=forged-code-of-mallory`);
    expect(stateless.status).toBe(400);

    const redirect = await op.completeBrowserLogin(authorizationUrl.href, 'dave');
    const real = await fetch(redirect);
    expect(real.status).toBe(200);
    const result = await login;
    expect(result.code, result.stderr).toBe(0);
    // Only the real code was redeemed, once.
    expect(
      codeGrants()
        .slice(grantsBefore)
        .map((request) => request.status),
    ).toEqual([200]);
    const get = await runBinary(['get'], { env: home.env() });
    expect(get.code, get.stderr).toBe(0);
    expect(decodeJwt(get.stdout)).toMatchObject({ sub: 'dave', aud: op.resource });
  });
});
