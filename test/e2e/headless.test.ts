// A first run on headless Linux (SSH, WSL, a container): no session bus, so no keychain.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

let moto: Moto;
let home: TestHome;
beforeAll(async () => {
  moto = await startMoto();
  home = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'auto' } }));
});
afterAll(async () => {
  await moto?.stop();
  home?.remove();
});

/** The environment of a session with no D-Bus: no bus address, no display, its own runtime folder. */
function headless(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return home.env({ XDG_RUNTIME_DIR: fs.mkdtempSync(path.join(home.dir, 'run-')), ...extra });
}

describe('first run with no keychain', () => {
  it('a failure prints its one line only; the fallback notice comes once, after a success, and names the fix, not X11', async () => {
    const secret = 'e2e/headless/first';
    const failed = await runBinary([], { env: headless({ KEYBROKER_SECRET: secret }) });
    expect(failed.code).toBe(5);
    expect(failed.stdout).toBe('');
    expect(failed.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(failed.stderr).not.toContain('keychain');

    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', 'sk-test-headless-first']);
    const served = await runBinary([], { env: headless({ KEYBROKER_SECRET: secret }) });
    expect(served).toMatchObject({ code: 0, stdout: 'sk-test-headless-first' });
    expect(served.stderr).toMatch(
      /^keybroker: no usable keychain \(this session has no Secret Service[^\n]*\); not caching the key \(each call reads the store\): set "cache": \{"fallback": "file"\} in the profile[^\n]*\n$/,
    );
    expect(served.stderr).not.toMatch(/X11|DISPLAY|autolaunch/i);

    const again = await runBinary([], { env: headless({ KEYBROKER_SECRET: secret }) });
    expect(again).toMatchObject({ code: 0, stderr: '' });
  });
});

describe('SSO login with no keychain and no fallback', () => {
  it('exits 9 before any request to the identity provider, naming "fallback": "file"', async () => {
    const { startTestOp } = await import('../fakes/oidc-op.ts');
    const { ssoConfig } = await import('../support/sso.ts');
    const op = await startTestOp({ accessTokenTtl: 60 });
    try {
      home.writeConfig(ssoConfig(op, {}, { cache: { backend: 'auto', fallback: 'none' } }));
      const before = op.requests.length;
      const login = await runBinary(['login', '--no-browser'], { env: headless(), timeoutMs: 30_000 });
      expect(login.code).toBe(9);
      expect(login.stderr.split('\n').filter(Boolean)).toEqual([
        expect.stringMatching(/^keybroker: there is no keychain to keep the sign-in of profile "default" in: .*"fallback": "file"/),
      ]);
      expect(op.requests.slice(before)).toEqual([]);
    } finally {
      home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'auto' } }));
      await op.stop();
    }
  });
});

describe('config init on a machine without a keychain', () => {
  it('says there is no keychain and names --fallback file; with it the file says "fallback": "file"', async () => {
    const plain = path.join(home.dir, 'init-plain.json');
    const said = await runBinary(['config', 'init', '--store', 'aws', '--region', 'us-east-1', '--output', plain], { env: headless() });
    expect(said.code, said.stderr).toBe(0);
    expect(said.stderr).toMatch(
      /keybroker: no keychain on this machine \(this session has no Secret Service[^\n]*\): without a fallback nothing is cached and every call reads the store\n/,
    );
    expect(said.stderr).toContain('run config init again with --fallback file');
    expect(said.stderr).not.toMatch(/X11|autolaunch/);
    expect(JSON.parse(fs.readFileSync(plain, 'utf8')).profiles.default.cache).not.toHaveProperty('fallback');

    const withFile = path.join(home.dir, 'init-file.json');
    const chosen = await runBinary(
      ['config', 'init', '--store', 'aws', '--region', 'us-east-1', '--fallback', 'file', '--output', withFile],
      { env: headless() },
    );
    expect(chosen.code, chosen.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(withFile, 'utf8')).profiles.default.cache).toMatchObject({ backend: 'auto', fallback: 'file' });
  });
});
