// One freshness rule for SSO tokens: get, status and doctor judge a cached token alike.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { runBinary } from '../support/binary.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { deviceLogin, ssoConfig } from '../support/sso.ts';

// 100-second tokens and a 20 s helper TTL: fresh for 100 − (2 × 20 + 10) = 50 s after issue with
// the SSO slack (10 s); with the stored-key slack (60 s) stale at birth.
const TOKEN_TTL_S = 100;
const HELPER_TTL_MS = 20_000;

let op: TestOp;
let home: TestHome;
beforeAll(async () => {
  op = await startTestOp({ accessTokenTtl: TOKEN_TTL_S });
  home = makeTestHome(ssoConfig(op));
});
afterAll(async () => {
  await op?.stop();
  home?.remove();
});

it('a just-issued SSO token: get serves it from the cache, and status and doctor both call it fresh', async () => {
  const env = home.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(HELPER_TTL_MS) });
  expect((await deviceLogin(op, env, 'hana')).code).toBe(0);
  const first = await runBinary(['get'], { env });
  expect(first.code, first.stderr).toBe(0);
  const issued = op.tokens.length;
  const second = await runBinary(['get'], { env });
  expect(second.stdout).toBe(first.stdout);
  expect(op.tokens.length).toBe(issued);

  const status = JSON.parse((await runBinary(['status', '--json'], { env })).stdout) as { cached: { freshness: string } };
  const doctor = JSON.parse((await runBinary(['doctor', '--json'], { env })).stdout) as { checks: { id: string; finding: string }[] };
  const entry = doctor.checks.find((check) => check.id === 'cache.entry')!;
  expect(status.cached.freshness).toBe('fresh');
  expect(entry.finding).toMatch(/, fresh$/);
});
