// Issue 11, must-show 3: Claude Desktop / Cowork's inferenceCredentialHelper is plain `keybroker`;
// each CLAUDE_HELPER_CONTEXT value through the built binary against moto.
import fs from 'node:fs';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Each case runs the binary several times and seeds moto with the aws CLI; on a shared, loaded
// machine that takes minutes, not seconds.
vi.setConfig({ testTimeout: 240_000 });
import { startMoto, type Moto } from '../support/moto.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import { closedPort } from '../support/fault-proxy.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

const SECRET = `claude-code/keys/${os.userInfo().username}`;
const FIRST = 'sk-test-desktop-first';
const SECOND = 'sk-test-desktop-second';

let moto: Moto;
const homes: TestHome[] = [];

beforeAll(async () => {
  moto = await startMoto();
  await moto.aws(['secretsmanager', 'create-secret', '--name', SECRET, '--secret-string', FIRST]);
});
afterAll(async () => {
  await moto?.stop();
  for (const home of homes) home.remove();
});

function home(profile: Record<string, unknown> = {}, endpoint = moto.endpoint): TestHome {
  const made = makeTestHome(awsConfig(endpoint, { cache: { backend: 'file' }, ...profile }));
  homes.push(made);
  return made;
}
const desktop = (testHome: TestHome, context: string) => runBinary([], { env: testHome.env({ CLAUDE_HELPER_CONTEXT: context }) });

describe("plain keybroker as Desktop's inferenceCredentialHelper", () => {
  it('interactive, scheduled-task and background print the bare key (exit 0, nothing on stderr)', async () => {
    const testHome = home();
    for (const context of ['interactive', 'scheduled-task', 'background']) {
      expect(await desktop(testHome, context)).toMatchObject({ code: 0, stdout: FIRST, stderr: '' });
    }
  });

  it('prints {"token", "headers"} when the profile has gatewayHeaders', async () => {
    const testHome = home({ gatewayHeaders: { 'x-tenant': 'acme', 'x-route': 'eu' } });
    const result = await desktop(testHome, 'interactive');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual({ token: FIRST, headers: { 'x-tenant': 'acme', 'x-route': 'eu' } });
  });

  it('mid-session-refresh (the gateway refused the key) re-reads the store where interactive serves the cache', async () => {
    const secret = `${SECRET}-refresh`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', FIRST]);
    const testHome = home({ secret });
    expect(await desktop(testHome, 'interactive')).toMatchObject({ code: 0, stdout: FIRST });
    await moto.aws(['secretsmanager', 'put-secret-value', '--secret-id', secret, '--secret-string', SECOND]);
    expect(await desktop(testHome, 'interactive')).toMatchObject({ code: 0, stdout: FIRST });
    expect(await desktop(testHome, 'mid-session-refresh')).toMatchObject({ code: 0, stdout: SECOND, stderr: '' });
    // The refreshed key is now what the cache serves.
    expect(await desktop(testHome, 'background')).toMatchObject({ code: 0, stdout: SECOND });
  });

  it('setup-test reads the store and leaves no file behind (no cache, lock or state)', async () => {
    const testHome = home();
    const before = testHome.files();
    expect(await desktop(testHome, 'setup-test')).toMatchObject({ code: 0, stdout: FIRST, stderr: '' });
    expect(testHome.files()).toEqual(before);
    // The same run as interactive does leave its cache entry: the check above can see one.
    expect(await desktop(testHome, 'interactive')).toMatchObject({ code: 0, stdout: FIRST });
    expect(testHome.files().length).toBeGreaterThan(before.length);
  });

  it("fails as get does: nothing on stdout, one line on stderr, get's exit codes", async () => {
    const down = home({}, `http://127.0.0.1:${await closedPort()}`);
    for (const context of ['scheduled-task', 'background', 'setup-test']) {
      const result = await desktop(down, context);
      expect(result).toMatchObject({ code: 7, stdout: '' });
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const missing = home({ secret: 'claude-code/keys/nobody-here' });
    expect(await desktop(missing, 'mid-session-refresh')).toMatchObject({ code: 5, stdout: '' });
  });
});

describe('keybroker setup for the other surfaces, the built binary', () => {
  it("--desktop --write merges the helper into the app's config, keeps other keys, and leaves a foreign helper alone without --force", async () => {
    const testHome = home({ gateway: 'https://llm.example.com' });
    const file = `${testHome.dir}/Claude-3p/claude_desktop_config.json`;
    const env = testHome.env({ KEYBROKER_DESKTOP_CONFIG: file });
    fs.mkdirSync(`${testHome.dir}/Claude-3p`);
    fs.writeFileSync(
      file,
      JSON.stringify({
        preferences: { theme: 'dark' },
        enterpriseConfig: { inferenceCredentialHelper: '/opt/other/helper.sh', inferenceModels: '["claude-sonnet-4-5"]' },
      }),
    );
    const refused = await runBinary(['setup', '--desktop', '--write'], { env });
    expect(refused).toMatchObject({ code: 2, stdout: '' });
    expect(refused.stderr).toContain('/opt/other/helper.sh');
    const forced = await runBinary(['setup', '--desktop', '--write', '--force'], { env });
    expect(forced.code, forced.stderr).toBe(0);
    const written = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(written.preferences).toEqual({ theme: 'dark' });
    expect(written.enterpriseConfig).toMatchObject({
      inferenceModels: '["claude-sonnet-4-5"]',
      inferenceProvider: 'gateway',
      inferenceGatewayBaseUrl: 'https://llm.example.com',
      inferenceCredentialHelper: BINARY,
      inferenceCredentialHelperTtlSec: '300',
    });
    expect(written.enterpriseConfig.inferenceCredentialHelperArgs).toBeUndefined();
  });

  it('the Claude Code snippet carries the profile\'s gatewayHeaders as ANTHROPIC_CUSTOM_HEADERS, one "Name: Value" a line', async () => {
    const testHome = home({ gateway: 'https://llm.example.com', gatewayHeaders: { 'x-tenant': 'acme', 'x-route': 'eu' } });
    const result = await runBinary(['setup'], { env: testHome.env() });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).env).toMatchObject({
      ANTHROPIC_BASE_URL: 'https://llm.example.com',
      ANTHROPIC_CUSTOM_HEADERS: 'x-tenant: acme\nx-route: eu',
    });
  });

  it("--mcp URL prints the .mcp.json entry running this binary's absolute path and the mcpServers entry that allows the URL", async () => {
    const testHome = home();
    const result = await runBinary(['setup', '--mcp', 'https://mcp.corp.example/mcp', '--mcp-name', 'corp'], { env: testHome.env() });
    expect(result.code, result.stderr).toBe(0);
    const [mcpJson, keybrokerConfig] = result.stdout.split(/\n(?=\{)/).map((block) => JSON.parse(block));
    expect(mcpJson).toEqual({
      mcpServers: { corp: { type: 'http', url: 'https://mcp.corp.example/mcp', headersHelper: `'${BINARY}' headers` } },
    });
    expect(keybrokerConfig).toEqual({ mcpServers: { corp: { url: 'https://mcp.corp.example/mcp', profile: 'default' } } });
  });
});

describe('doctor checks the other surfaces where they are configured', () => {
  it('warns on a Desktop TTL that outlives the refresh interval and fails an MCP server whose URL keybroker would refuse', async () => {
    const testHome = home();
    const project = `${testHome.dir}/project`;
    fs.mkdirSync(project);
    const desktopFile = `${testHome.dir}/claude_desktop_config.json`;
    fs.writeFileSync(
      desktopFile,
      JSON.stringify({ enterpriseConfig: { inferenceProvider: 'gateway', inferenceCredentialHelper: BINARY } }),
    );
    fs.writeFileSync(
      `${project}/.mcp.json`,
      JSON.stringify({ mcpServers: { corp: { type: 'http', url: 'https://mcp.corp.example/mcp', headersHelper: `${BINARY} headers` } } }),
    );
    const env = testHome.env({ KEYBROKER_DESKTOP_CONFIG: desktopFile });
    const doctor = async () =>
      JSON.parse((await runBinary(['doctor', '--json', '--project', project], { env, timeoutMs: 60_000 })).stdout) as {
        checks: { id: string; verdict: string; finding: string }[];
      };

    const before = await doctor();
    expect(before.checks.find((check) => check.id === 'surfaces.desktop')).toMatchObject({
      verdict: 'WARN',
      finding: expect.stringContaining('inferenceCredentialHelperTtlSec 3600'),
    });
    expect(before.checks.find((check) => check.id === 'surfaces.mcp')).toMatchObject({
      verdict: 'FAIL',
      finding: expect.stringContaining('does not list its URL'),
    });

    fs.writeFileSync(
      desktopFile,
      JSON.stringify({ enterpriseConfig: { inferenceCredentialHelper: BINARY, inferenceCredentialHelperTtlSec: '300' } }),
    );
    const config = JSON.parse(fs.readFileSync(testHome.configFile, 'utf8'));
    testHome.writeConfig({ ...config, mcpServers: { corp: { url: 'https://mcp.corp.example/' } } });
    const after = await doctor();
    expect(after.checks.find((check) => check.id === 'surfaces.desktop')).toMatchObject({ verdict: 'OK' });
    expect(after.checks.find((check) => check.id === 'surfaces.mcp')).toMatchObject({ verdict: 'OK' });

    // Nothing configured: no surface line at all.
    const bare = home();
    const plain = JSON.parse(
      (
        await runBinary(['doctor', '--json', '--project', bare.dir], {
          env: bare.env({ KEYBROKER_DESKTOP_CONFIG: `${bare.dir}/none.json` }),
          timeoutMs: 60_000,
        })
      ).stdout,
    ) as { checks: { id: string }[] };
    expect(plain.checks.filter((check) => check.id.startsWith('surfaces.'))).toEqual([]);
  }, 120_000);
});
