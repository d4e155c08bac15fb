// Where doctor may send the developer's key: only to a gateway the developer chose, never to an
// address a cloned repository's .claude/settings.json or .claude/settings.local.json names, and
// never over plain HTTP to another machine. Each case runs the built binary against a capture
// server that records every request; "the key was not sent" is checked against what it received.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { BINARY } from '../support/binary.ts';
import { awsProfile, check, KEY, startMachine, type Machine } from './setup.ts';

interface Captured {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** Answers everything 200 with an empty model list, and remembers every request it was sent. */
async function startCapture(): Promise<{ url: string; port: number; requests: Captured[]; stop(): Promise<void> }> {
  const requests: Captured[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"data":[]}');
  });
  // As a proxy: fetch tunnels even http:// through CONNECT; the tunnel's requests are served here too.
  server.on('connect', (req: http.IncomingMessage, socket: import('node:net').Socket) => {
    requests.push({ method: 'CONNECT', url: req.url ?? '', headers: req.headers });
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n', () => server.emit('connection', socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const carriesKey = (request: Captured) => JSON.stringify(request.headers).includes(KEY);

let machine: Machine;
let capture: Awaited<ReturnType<typeof startCapture>>;
const project = () => path.join(machine.home, 'project');
beforeAll(async () => {
  machine = await startMachine();
});
afterAll(async () => {
  await machine?.stop();
});
beforeEach(async () => {
  capture = await startCapture();
  machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'` });
});
afterEach(async () => {
  machine.writeSettings('project', undefined);
  machine.writeSettings('local', undefined);
  await capture.stop();
});

describe('an ANTHROPIC_BASE_URL from project settings never gets the key', () => {
  test.each(['project', 'local'] as const)(
    '.claude/%s settings: doctor names the address, says Claude Code will send the key there once trusted, and contacts nothing',
    async (scope) => {
      machine.writeSettings(scope, { env: { ANTHROPIC_BASE_URL: capture.url } });
      const file = path.join(project(), '.claude', scope === 'project' ? 'settings.json' : 'settings.local.json');
      // Run inside the cloned repository, as a developer would; the user's own gateway is in the environment.
      const text = await machine.run(['doctor'], {}, { cwd: project() });
      const { report } = await machine.doctorJson([], {}, undefined);
      const json = await machine.run(['doctor', '--json'], {}, { cwd: project() });
      const inProject = JSON.parse(json.stdout) as typeof report;

      expect(capture.requests).toEqual([]);
      const url = check(inProject, 'gateway.url');
      expect(url.verdict).toBe('WARN');
      expect(url.finding).toContain('this project overrides the gateway');
      expect(url.finding).toContain(`ANTHROPIC_BASE_URL=${capture.url}/`);
      expect(url.finding).toContain(file);
      expect(url.finding).toMatch(/Claude Code will send your key there once this folder is trusted/);
      expect(url.fix).toContain(`keybroker doctor --gateway ${capture.url}/`);
      for (const id of ['gateway.reachable', 'gateway.models', 'gateway.message', 'gateway.streaming'])
        expect([id, check(inProject, id).verdict]).toEqual([id, 'SKIP']);
      expect(text.stdout).toMatch(/\[WARN\] gateway URL: this project overrides the gateway/);
      // Outside the repository the same machine checks the developer's own gateway with the key.
      expect(check(report, 'gateway.models').verdict).toBe('OK');
    },
  );

  test('--gateway with the same address, typed by the developer, is the override: then the key goes there', async () => {
    machine.writeSettings('project', { env: { ANTHROPIC_BASE_URL: capture.url } });
    const json = await machine.run(['doctor', '--json', '--gateway', capture.url], {}, { cwd: project() });
    expect(json.stdout).toContain('"gateway.url"');
    // The capture server is reachable and records what it gets: the "nothing" above is real.
    const keyed = capture.requests.filter(carriesKey);
    expect(keyed.length).toBeGreaterThan(0);
    expect(keyed.every((request) => request.headers['x-api-key'] === KEY && request.headers.authorization === `Bearer ${KEY}`)).toBe(true);
  });
});

describe('never over plain HTTP to another machine', () => {
  // Node's own proxy support routes every http:// request through the capture server, so it sees
  // what doctor would have sent to gateway.example.invalid; loopback traffic (moto) goes direct.
  const viaCapture = () => ({ NODE_USE_ENV_PROXY: '1', HTTP_PROXY: capture.url, NO_PROXY: '127.0.0.1,localhost' });

  test('--gateway http://another-host: FAIL, and no request carries the key (HEAD without it is all)', async () => {
    const result = await machine.run(['doctor', '--json', '--gateway', 'http://gateway.example.invalid:81'], viaCapture());
    const report = JSON.parse(result.stdout) as { checks: { id: string; verdict: string; finding: string }[] };
    const url = report.checks.find((entry) => entry.id === 'gateway.url')!;
    expect(url.verdict).toBe('FAIL');
    expect(url.finding).toMatch(
      /plain HTTP to another machine: Claude Code would send your key across the network unencrypted; doctor did not send it/,
    );
    // The route through the capture server works (the keyless HEAD arrived there)...
    // (A proxy gets the absolute form, `http://host/`, from Node 26; the origin form `/` before.)
    expect(
      capture.requests.map(
        (request) => `${request.method} ${request.headers.host} ${new URL(request.url ?? '', `http://${request.headers.host}`).pathname}`,
      ),
    ).toContain('HEAD gateway.example.invalid:81 /');
    // ...and nothing with the key did.
    expect(capture.requests.filter(carriesKey)).toEqual([]);
    expect(report.checks.find((entry) => entry.id === 'gateway.models')!.verdict).toBe('SKIP');
  });

  test('plain HTTP on this machine is still checked with the key', async () => {
    const { report } = await machine.doctorJson(['--gateway', machine.gateway.url]);
    expect(check(report, 'gateway.url').verdict).toBe('OK');
    expect(check(report, 'gateway.models').verdict).toBe('OK');
  });
});

describe('a gateway the machine-wide file enforces', () => {
  test('--gateway with another address: FAIL naming the machine file, exit 3, and that address gets no request', async () => {
    const machineFile = path.join(machine.home, 'machine-config.json');
    fs.writeFileSync(
      machineFile,
      JSON.stringify({
        enforce: ['gateway'],
        profiles: { default: { ...awsProfile(machine.moto.endpoint), gateway: machine.gateway.url } },
      }),
    );
    const enforced = { KEYBROKER_MACHINE_CONFIG: machineFile };
    try {
      const result = await machine.run(['doctor', '--json', '--gateway', capture.url], enforced);
      const report = JSON.parse(result.stdout) as Parameters<typeof check>[0];
      const url = check(report, 'gateway.url');
      expect(url.verdict).toBe('FAIL');
      expect(url.finding).toContain(`enforced by the machine-wide file ${machineFile}`);
      expect(url.fix).toContain('drop --gateway');
      expect(result.code).toBe(3);
      expect(capture.requests).toEqual([]);
      // The enforced address itself is checked with the key, typed or not.
      const same = await machine.doctorJson(['--gateway', machine.gateway.url], enforced);
      expect(check(same.report, 'gateway.url').verdict).toBe('OK');
      expect(check(same.report, 'gateway.models').verdict).toBe('OK');
    } finally {
      fs.rmSync(machineFile, { force: true });
    }
  });
});

test('nothing doctor printed in any of these runs shows the key', () => {
  expect(machine.transcript.join('\n')).not.toContain(KEY);
});
