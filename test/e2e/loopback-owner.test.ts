// Loopback is not a boundary between local users: a port on 127.0.0.1 that another user (uid
// 65534) listens on gets no credential over plain HTTP, from doctor, get (Vault token, AWS
// signed request) or an SSO login. The listener records what it received: "nothing" is checked
// there. The developer's own loopback servers (moto, the fake Vault, gateway and OP) keep
// working: the other suites run against them.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runBinary } from '../support/binary.ts';
import { makeTestHome, awsConfig, type TestHome } from '../support/e2e-home.ts';
import { listenAsOtherUser, type OtherListener } from '../support/other-listener.ts';
import { check, KEY, startMachine, type Machine } from '../doctor/setup.ts';

const VAULT_TOKEN = 'hvs.test-developer-token';
let other: OtherListener;
let home: TestHome;

beforeAll(async () => {
  other = await listenAsOtherUser();
  home = makeTestHome();
});
afterAll(async () => {
  await other?.stop();
  home?.remove();
});

/** The listener is there and records requests: a keyless probe reaches it (run last in each case). */
async function listenerIsLive(): Promise<void> {
  const before = other.received.length;
  await fetch(`${other.url}/probe`).then((response) => response.text());
  // Its record comes over the listener's stdout, which may be read after the answer: wait for it. The pipe
  // keeps order, so a request anything sent there before the probe shows here too.
  await vi.waitFor(() => expect(other.received.slice(before).some((request) => request.url === '/probe')).toBe(true), {
    timeout: 10_000,
    interval: 20,
  });
  expect(other.received.slice(before).map((request) => request.url)).toEqual(['/probe']);
  other.received.splice(before, 1);
}

describe('a plain-HTTP loopback port of another local user gets no credential', () => {
  it('get with a Vault address there: exit 3 naming uid 65534 (nobody), nothing on stdout, no request with the token', async () => {
    home.writeConfig({
      profiles: {
        default: { store: { type: 'vault', address: other.url, mount: 'secret' }, secret: 'claude-code/keys/{user}', user: 'os' },
      },
    });
    const result = await runBinary([], { env: home.env({ VAULT_TOKEN }) });
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toContain(
      `the Vault address (profile "default") ${other.url} is a port on this machine that another local user listens on (uid 65534 (nobody), not you)`,
    );
    expect(result.stderr).toContain(`ss -ltnpe sport = :${other.port}`);
    expect(result.stderr).not.toContain(VAULT_TOKEN);
    expect(other.received).toEqual([]);
    await listenerIsLive();
  });

  it('get with an AWS endpoint there: exit 3, and no signed request arrives', async () => {
    home.writeConfig(awsConfig(other.url));
    const result = await runBinary([], { env: home.env() });
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toContain(
      `the AWS endpoint (profile "default") ${other.url} is a port on this machine that another local user listens on (uid 65534 (nobody)`,
    );
    expect(other.received).toEqual([]);
    await listenerIsLive();
  });

  it('login with an OIDC issuer there: exit 3 before any request to it', async () => {
    // A file cache, so login gets past its check that the sign-in can be kept, to the issuer.
    home.writeConfig({
      profiles: { default: { oidc: { issuer: other.url, clientId: 'keybroker-cli', flow: 'device' }, cache: { backend: 'file' } } },
    });
    const result = await runBinary(['login'], { env: home.env() });
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toContain(`the identity provider ${other.url} is a port on this machine that another local user listens on`);
    expect(other.received).toEqual([]);
    await listenerIsLive();
  });

  describe('doctor', () => {
    let machine: Machine;
    beforeAll(async () => {
      machine = await startMachine();
    });
    afterAll(async () => {
      await machine?.stop();
    });

    it('--gateway there: gateway URL FAIL naming the owner, exit 3, the listener gets no request at all', async () => {
      const { result, report } = await machine.doctorJson(['--gateway', other.url]);
      expect(result.code).toBe(3);
      const url = check(report, 'gateway.url');
      expect(url.verdict).toBe('FAIL');
      expect(url.finding).toContain(
        `the gateway ${other.url} is a port on this machine that another local user listens on (uid 65534 (nobody), not you): keybroker did not send your key there`,
      );
      for (const id of ['gateway.reachable', 'gateway.models', 'gateway.message', 'gateway.streaming'])
        expect([id, check(report, id).verdict]).toEqual([id, 'SKIP']);
      expect(other.received).toEqual([]);
      expect(machine.transcript.join('\n')).not.toContain(KEY);
      await listenerIsLive();
    });

    it('the same machine with its own gateway on loopback: the key is checked there as before', async () => {
      const { result, report } = await machine.doctorJson(['--gateway', machine.gateway.url]);
      expect(result.code).toBe(0);
      expect(check(report, 'gateway.models').verdict).toBe('OK');
    });
  });
});
