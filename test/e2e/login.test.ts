// `keybroker login` end to end with the built binary: `get` never logs in and names the command;
// `login` runs Vault's OIDC browser flow (the test plays the browser through $BROWSER, as
// xdg-open's users set it), leaves the token where the vault CLI keeps it and warms the keychain.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARY, cleanEnv, runBinary } from '../support/binary.ts';
import { makeFakeBrowser, type FakeBrowser } from '../support/fake-browser.ts';
import { freePort } from '../support/processes.ts';
import { closedPort } from '../support/fault-proxy.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault.ts';

const KEY = 'sk-test-login-e2e-7f3a9c';

let vault: FakeVault;
let keyring: SecretService;
let configFile: string;
let callbackPort: number;
let browser: string;
/** The test's browser: notes its argv and each address its page led to. */
let fakeBrowser: FakeBrowser;

const tokenFile = () => path.join(keyring.home, '.vault-token');
const env = (extra: NodeJS.ProcessEnv = {}) => cleanEnv({ ...keyring.env, KEYBROKER_CONFIG: configFile, ...extra }, keyring.home);
const loginRequests = () => vault.requests.filter((request) => request.path.startsWith('/v1/auth/oidc/')).length;
const opened = () => fakeBrowser.addresses();

beforeAll(async () => {
  [vault, keyring] = await Promise.all([startFakeVault(), startSecretService()]);
  callbackPort = await freePort();
  vault.mountKv('secret', 2);
  vault.setPolicy('claude-code-alice', { 'secret/data/claude-code/keys/alice': ['read'] });
  // The role allows only this machine's callback, as an admin sets allowed_redirect_uris.
  vault.addOidcRole('developer', [`http://localhost:${callbackPort}/oidc/callback`], { alias: 'alice', policies: ['claude-code-alice'] });
  await vault.kvPut('claude-code/keys/alice', { api_key: KEY });

  configFile = path.join(keyring.home, 'keybroker.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      profiles: {
        default: {
          store: { type: 'vault', address: vault.address, mount: 'secret', auth: { method: 'oidc', role: 'developer', callbackPort } },
          secret: 'claude-code/keys/{user}',
          user: 'store',
          cache: { backend: 'keychain' },
        },
      },
    }),
  );
  // The browser: the identity provider signs the person in at once and redirects to the local
  // callback, which curl follows (to localhost, as a real browser would).
  fakeBrowser = makeFakeBrowser(path.join(keyring.home, 'bin'), { follow: true });
  browser = fakeBrowser.script;
});

afterAll(async () => {
  await keyring?.stop();
  await vault?.stop();
});

describe('keybroker login with Vault OIDC, the built binary', () => {
  it('get without a Vault token fails with exit 4 and the exact vault login command, and opens no browser', async () => {
    const result = await runBinary([], { env: env({ BROWSER: browser }) });
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `keybroker: not logged in to Vault at ${vault.address}, KV v2 mount "secret": no token in VAULT_TOKEN or ~/.vault-token: ` +
        `run 'vault login -address=${vault.address} -method=oidc role=developer port=${callbackPort}'\n`,
    );
    expect(opened()).toEqual([]);
    expect(loginRequests()).toBe(0);
  });

  it('login opens the sign-in page through $BROWSER, prints its address, keeps the token in ~/.vault-token (0600) and warms the keychain', async () => {
    const result = await runBinary(['login', '--verbose'], { env: env({ BROWSER: browser }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('');

    // The browser was handed exactly the address printed for a person on a headless box.
    const [address] = opened();
    // It was handed a page, not the address: no argv holds the state.
    expect(fakeBrowser.argv().at(-1)).toEqual([expect.stringMatching(/^file:\/\/\/.+\.html$/)]);
    expect(address).toMatch(new RegExp(`^${vault.address}/v1/fake-idp/authorize\\?`));
    expect(new URL(address!).searchParams.get('redirect_uri')).toBe(`http://localhost:${callbackPort}/oidc/callback`);
    expect(result.stderr).toContain(`keybroker: Complete the login in your browser: ${address}\n`);
    expect(fs.readFileSync(fakeBrowser.pageFile, 'utf8')).toContain('Signed in to Vault');
    expect(result.stderr).toContain(
      `keybroker: Logged in to Vault at ${vault.address}, KV v2 mount "secret" as alice; the token is in ${tokenFile()}`,
    );

    const token = fs.readFileSync(tokenFile(), 'utf8');
    expect(token).toMatch(/^hvs\./);
    expect(fs.statSync(tokenFile()).mode & 0o777).toBe(0o600);

    const accounts = await keyring.accounts('keybroker');
    expect(accounts).toHaveLength(1);
    const cached = JSON.parse((await keyring.lookup({ service: 'keybroker', username: accounts[0]! }))!);
    expect(cached).toMatchObject({ key: KEY, version: '1', secret: 'claude-code/keys/alice' });

    // Never the key, never the Vault token, even with the debug trace on.
    expect(result.stdout + result.stderr).not.toContain(KEY);
    expect(result.stdout + result.stderr).not.toContain(token);
    expect(result.stderr).toMatch(/cached key sha256:[0-9a-f]{8} \(version 1 of "claude-code\/keys\/alice"\)/);
  });

  it('after login, get serves the key from the keychain, and with no cache reads Vault with the saved token, never logging in', async () => {
    const logins = loginRequests();
    const asked = vault.requests.length;
    const warm = await runBinary([], { env: env({ BROWSER: browser }) });
    expect(warm).toMatchObject({ code: 0, stdout: KEY, stderr: '' });
    expect(vault.requests.length).toBe(asked);

    const cold = await runBinary([], { env: env({ BROWSER: browser, KEYBROKER_CACHE_BACKEND: 'none' }) });
    expect(cold).toMatchObject({ code: 0, stdout: KEY, stderr: '' });
    expect(vault.requests.length).toBeGreaterThan(asked);
    expect(loginRequests()).toBe(logins);
    expect(opened()).toHaveLength(1);
  });

  it('with no browser to open, prints the address and completes when the person opens it themselves', async () => {
    fs.rmSync(tokenFile());
    // No BROWSER and no xdg-open on PATH: a headless box.
    const emptyPath = fs.mkdtempSync(path.join(keyring.home, 'path-'));
    const child = spawn(BINARY, ['login'], { env: env({ PATH: emptyPath }), stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    const address = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        const found = /Complete the login in your browser: (\S+)/.exec(stderr);
        if (found && stderr.includes('\n', found.index + found[0].length - 1)) resolve(found[1]!);
      });
      child.on('exit', () => reject(new Error(`login exited before printing an address: ${stderr}`)));
    });
    // The person, elsewhere: signs in at the identity provider, whose redirect reaches this machine.
    const idp = await fetch(address, { redirect: 'manual' });
    expect(idp.status).toBe(302);
    const callback = new URL(idp.headers.get('location')!);
    expect(callback.host).toBe(`localhost:${callbackPort}`);
    callback.hostname = '127.0.0.1';
    expect(await (await fetch(callback)).text()).toContain('Signed in to Vault');
    const code = await new Promise<number | null>((resolve) =>
      child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve),
    );
    expect(code, stderr).toBe(0);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/no browser could be opened/);
    expect(stderr).not.toContain(KEY);
    expect(fs.readFileSync(tokenFile(), 'utf8')).toMatch(/^hvs\./);
  });

  it('warns that VAULT_TOKEN, when set, wins over the token it just saved', async () => {
    const result = await runBinary(['login'], { env: env({ BROWSER: browser, VAULT_TOKEN: 'hvs.revoked-long-ago' }) });
    expect(result.stderr).toContain('keybroker: VAULT_TOKEN is set and takes precedence over ~/.vault-token: unset it to use this login\n');
    // The cache is warmed as `get` would read the store: with VAULT_TOKEN, which Vault refuses.
    expect(result.code).toBe(4);
    expect(fs.readFileSync(tokenFile(), 'utf8')).toMatch(/^hvs\./);
  });

  it('--no-browser leaves $BROWSER alone and waits for the person', async () => {
    const before = opened().length;
    const child = spawn(BINARY, ['login', '--no-browser'], { env: env({ BROWSER: browser }), stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let stderr = '';
    const address = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        const found = /Complete the login in your browser: (\S+)\n/.exec(stderr);
        if (found) resolve(found[1]!);
      });
      child.on('exit', () => reject(new Error(`login exited before printing an address: ${stderr}`)));
    });
    const idp = await fetch(address, { redirect: 'manual' });
    const callback = new URL(idp.headers.get('location')!);
    callback.hostname = '127.0.0.1';
    await (await fetch(callback)).text();
    const code = await new Promise<number | null>((resolve) =>
      child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve),
    );
    expect(code, stderr).toBe(0);
    expect(opened()).toHaveLength(before);
  });

  it('a forged callback with a wrong state, sent first, is answered 400 and the login waits on for the real one', async () => {
    const child = spawn(BINARY, ['login', '--no-browser'], { env: env({ BROWSER: browser }), stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let stderr = '';
    const address = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
        const found = /Complete the login in your browser: (\S+)\n/.exec(stderr);
        if (found) resolve(found[1]!);
      });
      child.on('exit', () => reject(new Error(`login exited before printing an address: ${stderr}`)));
    });
    const callbacksBefore = vault.requests.filter((request) => request.path.endsWith('/oidc/callback')).length;
    const forged = await fetch(`http://127.0.0.1:${callbackPort}/oidc/callback?state=st_forged&code=mallory`);
    expect(forged.status).toBe(400);
    expect(child.exitCode).toBeNull();
    const idp = await fetch(address, { redirect: 'manual' });
    const callback = new URL(idp.headers.get('location')!);
    callback.hostname = '127.0.0.1';
    expect((await fetch(callback)).status).toBe(200);
    const code = await new Promise<number | null>((resolve) =>
      child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve),
    );
    expect(code, stderr).toBe(0);
    // Vault was asked to redeem the real callback only.
    expect(
      vault.requests
        .filter((request) => request.path.endsWith('/oidc/callback'))
        .slice(callbacksBefore)
        .map((request) => request.status),
    ).toEqual([200]);
  });

  it('a login right after another still reads the store, so it picks up a key the admin just rotated', async () => {
    const rotated = 'sk-test-login-e2e-rotated-41d2';
    await vault.kvPut('claude-code/keys/alice', { api_key: rotated });
    const result = await runBinary(['login'], { env: env({ BROWSER: browser }) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('(version 2 of "claude-code/keys/alice")');
    expect(result.stdout + result.stderr).not.toContain(rotated);
    const [account] = await keyring.accounts('keybroker');
    expect(JSON.parse((await keyring.lookup({ service: 'keybroker', username: account! }))!)).toMatchObject({ key: rotated, version: '2' });
  });
});

describe('keybroker login for a cloud store', () => {
  it('aws, SSO session missing: prints exactly `aws sso login --profile dev-sso` on stdout and exits 4, reading no key', async () => {
    const home = fs.mkdtempSync(path.join(keyring.home, 'aws-'));
    const awsConfig = path.join(home, 'aws-config');
    // A developer's SSO profile whose `aws sso login` has not been run (no token in ~/.aws/sso/cache).
    fs.writeFileSync(
      awsConfig,
      [
        '[profile dev-sso]',
        'sso_session = corp',
        'sso_account_id = 111122223333',
        'sso_role_name = Developer',
        'region = us-east-1',
        '[sso-session corp]',
        'sso_start_url = https://corp.awsapps.com/start',
        'sso_region = us-east-1',
        '',
      ].join('\n'),
    );
    const config = path.join(home, 'keybroker.json');
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: {
          default: {
            store: { type: 'aws', region: 'us-east-1', endpoint },
            secret: 'claude-code/keys/{user}',
            user: 'os',
            cache: { backend: 'none' },
          },
        },
      }),
    );
    const result = await runBinary(['login'], {
      env: cleanEnv(
        {
          KEYBROKER_CONFIG: config,
          AWS_PROFILE: 'dev-sso',
          AWS_CONFIG_FILE: awsConfig,
          AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'),
          BROWSER: browser,
        },
        home,
      ),
    });
    expect(result.code, result.stderr).toBe(4);
    expect(result.stdout).toBe('aws sso login --profile dev-sso\n');
    expect(result.stderr).toMatch(/^keybroker: not logged in to AWS.*: run the command above, then 'keybroker login' again\n$/);
    expect(result.stdout + result.stderr).not.toContain('sk-test');
  });
});
