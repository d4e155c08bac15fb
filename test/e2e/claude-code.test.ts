// Must-show 3: the real Claude Code, offline, with apiKeyHelper = the built binary, against a
// local fake gateway; keybroker reads the key from moto.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runClaudeIn } from '../support/claude.ts';
import { closedPort } from '../support/fault-proxy.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

let moto: Moto;
let gateway: FakeGateway;
const homes: TestHome[] = [];

beforeAll(async () => {
  [moto, gateway] = await Promise.all([startMoto(), startFakeGateway()]);
});
afterAll(async () => {
  await Promise.all([moto?.stop(), gateway?.stop()]);
  for (const home of homes) home.remove();
});

/** A HOME whose Claude Code settings run keybroker, with keybroker's config given in settings "env". */
function claudeHome(keybrokerConfig: unknown): TestHome {
  const home = makeTestHome(keybrokerConfig);
  homes.push(home);
  return home;
}

describe('the real Claude Code with apiKeyHelper = dist/keybroker', () => {
  it('completes `claude -p` with the key from the store in both x-api-key and Authorization: Bearer', async () => {
    const key = 'sk-test-e2e-claude-code';
    const { username } = (await import('node:os')).userInfo();
    await moto.aws(['secretsmanager', 'create-secret', '--name', `claude-code/keys/${username}`, '--secret-string', key]);
    gateway.acceptKeys([key]);
    const home = claudeHome(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));

    const before = gateway.log.length;
    const result = await runClaudeIn(home, ['-p', 'say pong'], { gateway: gateway.url });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('pong');

    const messages = gateway.log.slice(before).filter((request) => request.path === '/v1/messages');
    expect(messages.length).toBeGreaterThan(0);
    for (const request of messages) {
      expect(request).toMatchObject({ xApiKey: key, bearer: key, status: 200 });
    }
  });

  it("shows keybroker's one-line message when the store is unreachable and nothing is cached", async () => {
    const home = claudeHome(awsConfig(`http://127.0.0.1:${await closedPort()}`, { cache: { backend: 'none' } }));
    const before = gateway.log.length;
    const message =
      /apiKeyHelper failed: exited 7: keybroker: cannot reach AWS Secrets Manager \(us-east-1, http:\/\/127\.0\.0\.1:\d+\) \(ECONNREFUSED\): check your network or VPN and the store endpoint\n/;
    const result = await runClaudeIn(home, ['-p', 'say pong'], { gateway: gateway.url, until: message });
    expect(result.stdout + result.stderr).toMatch(message);
    console.info(`Claude Code showed keybroker's message after ${Math.round(result.ms)} ms`);
    // No request with a key reached the gateway.
    expect(gateway.log.slice(before).filter((request) => request.xApiKey || request.bearer)).toEqual([]);
  });
});
