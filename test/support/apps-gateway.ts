// Anthropic's own gateway for the tests, as FIELD-NOTES ran it: a throwaway PostgreSQL cluster
// (Debian's, run as user postgres), oidc-provider as the company IdP with a confidential client
// for the gateway, a fake Anthropic upstream that accepts only the org's key, and `claude gateway`
// from the suite's Claude Code. Everything listens on 127.0.0.1 and is stopped by stop().
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { cookieBrowser, startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { freePort, startProcess, waitForPort, type Started } from './processes.ts';

/** The gateway's own client executable: the one `node_modules/.bin/claude` starts. */
const CLAUDE_EXE = path.resolve(import.meta.dirname, '../../node_modules/@anthropic-ai/claude-code/bin/claude.exe');
/** A keybroker config whose profile signs in to the gateway itself (its RFC 8414 metadata, device flow). */
export function appsGatewayConfig(gateway: AppsGateway, profile: Record<string, unknown> = {}) {
  return {
    profiles: {
      default: {
        oidc: { issuer: gateway.url, clientId: 'keybroker', flow: 'device' },
        gateway: gateway.url,
        cache: { backend: 'file' },
        ...profile,
      },
    },
  };
}

export const ORG_KEY = 'sk-test-apps-gateway-org-key-0001';
const GATEWAY_CLIENT = { clientId: 'claude-apps-gateway', secret: 'test-secret-apps-gateway-client-0001' };

export interface AppsGateway {
  /** The gateway's address: the issuer of its sign-in and the base URL for the Messages API. */
  url: string;
  op: TestOp;
  upstream: FakeGateway;
  /** The gateway's own log (JSON lines). */
  output(): string;
  /** Completes a device sign-in the way a browser does: the gateway's page, the IdP's login, the callback. */
  completeDeviceLogin(verificationUri: string, userCode: string, accountId: string): Promise<void>;
  /** Stops the gateway process only (a gateway that is down). */
  stopGateway(): Promise<void>;
  stop(): Promise<void>;
}

export interface AppsGatewayOptions {
  /** session.ttl_hours (fractions allowed): how long a sign-in lasts. */
  sessionHours?: number;
}

/** Debian puts PostgreSQL's programs under /usr/lib/postgresql/<version>/bin, off PATH. */
function postgresBin(name: string): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const candidate = path.join(root, version, 'bin', name);
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new Error(`no PostgreSQL ${name}: run apt-get install postgresql`);
}

/** A PostgreSQL cluster in `dir`, run in the foreground as user postgres (so stop() ends it). */
async function startPostgres(dir: string): Promise<{ url: string; server: Started }> {
  fs.mkdirSync(dir, { mode: 0o700 });
  execFileSync('chown', ['postgres:postgres', dir]);
  const asPostgres = (command: string, args: string[]) =>
    execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: 'pipe' });
  asPostgres(postgresBin('initdb'), ['-D', dir, '-A', 'trust', '-U', 'gw']);
  const port = await freePort();
  const server = startProcess('runuser', [
    '-u',
    'postgres',
    '--',
    postgresBin('postgres'),
    '-D',
    dir,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
  ]);
  await waitForPort(port, 30_000);
  for (let attempt = 0; ; attempt++) {
    try {
      asPostgres(postgresBin('createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'gw', 'gw']);
      break;
    } catch (error) {
      if (attempt > 20) throw error; // the server accepts connections a moment before it takes queries
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  return { url: `postgres://gw@127.0.0.1:${port}/gw`, server };
}

export async function startAppsGateway(options: AppsGatewayOptions = {}): Promise<AppsGateway> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-apps-gateway-'));
  fs.chmodSync(dir, 0o755); // user postgres walks into its data directory
  const started: { stop(): Promise<void> }[] = [];
  try {
    const postgres = await startPostgres(path.join(dir, 'pg'));
    started.push(postgres.server);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const op = await startTestOp({ confidential: { ...GATEWAY_CLIENT, redirectUri: `${url}/oauth/callback` } });
    started.push(op);
    const upstream = await startFakeGateway({ keys: [ORG_KEY] });
    started.push(upstream);
    const config = {
      listen: { host: '127.0.0.1', port },
      oidc: { issuer: op.issuer, client_id: GATEWAY_CLIENT.clientId, client_secret: GATEWAY_CLIENT.secret },
      session: {
        jwt_secret: 'test-jwt-secret-for-the-apps-gateway-0123456789abcdef',
        ...(options.sessionHours ? { ttl_hours: options.sessionHours } : {}),
      },
      store: { postgres_url: postgres.url },
      upstreams: [{ name: 'anthropic', provider: 'anthropic', auth: { api_key: ORG_KEY }, base_url: upstream.url }],
    };
    const configFile = path.join(dir, 'gateway.yaml');
    fs.writeFileSync(configFile, stringify(config), { mode: 0o600 });
    const gateway = startProcess(CLAUDE_EXE, ['gateway', '--config', configFile], {
      env: { PATH: process.env['PATH'], HOME: dir, CLAUDE_GATEWAY_ALLOW_LOOPBACK: '1' },
    });
    started.push(gateway);
    await waitForHealth(url, gateway);
    return {
      url,
      op,
      upstream,
      output: gateway.output,
      completeDeviceLogin: (verificationUri, userCode, accountId) => approveDevice(verificationUri, op, userCode, accountId),
      stopGateway: () => gateway.stop(),
      stop: () => stopAll(started, dir),
    };
  } catch (error) {
    await stopAll(started, dir);
    throw error;
  }
}

async function stopAll(started: { stop(): Promise<void> }[], dir: string): Promise<void> {
  for (const item of started.reverse()) await item.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

async function waitForHealth(url: string, gateway: Started): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (gateway.child.exitCode !== null) throw new Error(`claude gateway exited: ${gateway.output().slice(-2000)}`);
    const healthy = await fetch(`${url}/healthz`).then(
      (response) => response.ok,
      () => false,
    );
    if (healthy) return;
    if (Date.now() > deadline) throw new Error(`claude gateway did not become healthy: ${gateway.output().slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The gateway's device page (it sets a cookie), its same-origin form post, the IdP's login, the callback. */
async function approveDevice(verificationUri: string, op: TestOp, userCode: string, accountId: string): Promise<void> {
  const browser = cookieBrowser(verificationUri, op.issuer);
  let page = await browser.get(`${verificationUri}?user_code=${encodeURIComponent(userCode)}`);
  page = await browser.submit(page, { user_code: userCode });
  await browser.finishInteraction(page, accountId);
}
