// What is special about Vault beyond the shared contract: every login method of the vault CLI's
// world, the OIDC browser flow, token renewal, namespaces, KV v1, revoked versions, its errors.
import { generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import type { StoreConfig } from '../../providers/provider.ts';
import { AccessDenied, ConfigError, NotAuthenticated, SecretNotFound, StoreUnreachable, UsageError } from '../../src/kernel/errors.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { fetchFromStore } from '../../src/broker/broker.ts';
import { storeSchema } from '../../providers/vault.ts';
import type { Provider } from '../../providers/provider.ts';
import { startFakeVault, type FakeVault } from '../fakes/vault.ts';
import { makeTestCertificates } from '../fakes/tls.ts';

let vault: FakeVault;
let home: string;
const homes: string[] = [];

beforeAll(async () => {
  vault = await startFakeVault();
  vault.mountKv('secret', 2);
  vault.mountKv('kv1', 1);
  vault.setPolicy('reader', { 'secret/data/claude-code/keys/*': ['read'], 'kv1/claude-code/keys/*': ['read'] });
  vault.setPolicy('admin', {
    'secret/*': ['create', 'read', 'update', 'delete', 'list'],
    'kv1/*': ['create', 'read', 'update', 'delete', 'list'],
  });
  await vault.kvPut('claude-code/keys/alice', { api_key: 'sk-test-vault-alice' });
});
afterAll(async () => {
  await vault?.stop();
  for (const dir of homes) fs.rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  home = '';
});

function newHome(token?: string): string {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-vault-'));
  homes.push(home);
  if (token !== undefined) fs.writeFileSync(path.join(home, '.vault-token'), token, { mode: 0o600 });
  return home;
}

function profileFor(store: Record<string, unknown>, timeoutMs = 3_000): Profile {
  return {
    name: 'vault-test',
    store: { type: 'vault', address: vault.address, ...store } as StoreConfig,
    secret: 'claude-code/keys/{user}',
    field: 'api_key',
    user: 'store',
    timeoutMs,
    cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
  };
}

function open(store: Record<string, unknown>, env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<Provider> {
  return openProvider(profileFor(store, timeoutMs), {
    env: { PATH: process.env['PATH'], HOME: home || newHome(), ...env },
    debug: () => {},
  });
}

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error as Error & { fix: string; line(): string },
  );

describe('the developer token, as the vault CLI leaves it', () => {
  it('reads ~/.vault-token when VAULT_TOKEN is not set', async () => {
    newHome(`${vault.createToken({ alias: 'alice', policies: ['reader'], authPath: 'auth/oidc/oidc/callback' })}\n`);
    const provider = await open({}, {});
    expect((await provider.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');
  });

  it('prefers VAULT_TOKEN over ~/.vault-token, as the CLI does', async () => {
    newHome('hvs.not-a-real-token');
    const provider = await open({}, { VAULT_TOKEN: vault.createToken({ alias: 'alice', policies: ['reader'] }) });
    expect((await provider.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');
  });

  it('without any token, fails at once with the exact login command and asks nothing of the server', async () => {
    newHome();
    const before = vault.requests.length;
    const provider = await open({ auth: { method: 'oidc', role: 'developer' } }, {});
    const error = await failure(provider.readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect(error!.line()).toContain(`run 'vault login -address=${vault.address} -method=oidc role=developer'`);
    expect(vault.requests.length).toBe(before);
  });

  it('tells an expired token from a policy that denies (lookup-self)', async () => {
    const expired = vault.createToken({ alias: 'alice', policies: ['reader'], remainingSeconds: -1 });
    const error = await failure((await open({}, { VAULT_TOKEN: expired })).readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect(error!.message).toMatch(/rejected the token from VAULT_TOKEN/);
    const denied = await failure(
      (await open({}, { VAULT_TOKEN: vault.createToken({ alias: 'alice', policies: [] }) })).readCurrent('claude-code/keys/alice'),
    );
    expect(denied).toBeInstanceOf(AccessDenied);
    expect(denied!.fix).toContain('secret/data/claude-code/keys/alice');
  });

  it('renews a renewable token that is near its end, and leaves a fresh one alone', async () => {
    const ageing = vault.createToken({ alias: 'alice', policies: ['reader'], ttlSeconds: 3600, remainingSeconds: 600 });
    await (await open({}, { VAULT_TOKEN: ageing })).readCurrent('claude-code/keys/alice');
    expect(vault.tokenState(ageing)).toMatchObject({ renewCount: 1 });
    expect(vault.tokenState(ageing)!.ttl).toBeGreaterThan(3500);

    const fresh = vault.createToken({ alias: 'alice', policies: ['reader'], ttlSeconds: 3600 });
    const fixed = vault.createToken({ alias: 'alice', policies: ['reader'], ttlSeconds: 3600, remainingSeconds: 600, renewable: false });
    await (await open({}, { VAULT_TOKEN: fresh })).readCurrent('claude-code/keys/alice');
    await (await open({}, { VAULT_TOKEN: fixed })).readCurrent('claude-code/keys/alice');
    expect(vault.tokenState(fresh)!.renewCount).toBe(0);
    expect(vault.tokenState(fixed)!.renewCount).toBe(0);
  });
});

describe('{user} from the token', () => {
  it('is the alias of the login (display name without the mount prefix)', async () => {
    const provider = await open(
      {},
      { VAULT_TOKEN: vault.createToken({ alias: 'alice@corp.example', policies: ['reader'], authPath: 'auth/oidc/oidc/callback' }) },
    );
    expect(await provider.whoami()).toMatchObject({ user: 'alice@corp.example' });
  });

  it('is the entity name when an admin named the entity', async () => {
    const provider = await open(
      {},
      {
        VAULT_TOKEN: vault.createToken({
          alias: 'a.smith',
          entityName: 'alice',
          policies: ['reader'],
          authPath: 'auth/ldap/login/a.smith',
        }),
      },
    );
    const identity = await provider.whoami();
    expect(identity.user).toBe('alice');
    expect(identity.principal).toMatch(/ldap-a\.smith \(entity [0-9a-f-]{36}\)/);
  });

  it("resolves the template end to end and reads that developer's key", async () => {
    const provider = await open(
      {},
      { VAULT_TOKEN: vault.createToken({ alias: 'alice', policies: ['reader'], authPath: 'auth/userpass/login/alice' }) },
    );
    const entry = await fetchFromStore({
      profile: profileFor({}),
      openProvider: async () => provider,
      osUser: () => 'not-used',
      now: Date.now,
    });
    expect(entry).toMatchObject({ key: 'sk-test-vault-alice', secret: 'claude-code/keys/alice', version: '1' });
  });
});

describe('login methods', () => {
  it('approle: logs in with role_id and the secret_id from a file, and a wrong secret_id is NotAuthenticated', async () => {
    const { roleId, secretId } = vault.addApprole('ci', { policies: ['reader'] });
    const file = path.join(newHome(), 'secret-id');
    fs.writeFileSync(file, secretId);
    const provider = await open({ auth: { method: 'approle', roleId, secretIdFile: file } }, {});
    expect((await provider.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');

    const wrong = await open(
      { auth: { method: 'approle', roleId, secretIdEnv: 'CI_VAULT_SECRET_ID' } },
      { CI_VAULT_SECRET_ID: 'a-wrong-secret-id' },
    );
    const error = await failure(wrong.readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect(error!.message).toContain('invalid role or secret ID');
    expect(error!.fix).toMatch(/role_id and secret_id/);
  });

  it.each(['userpass', 'ldap'] as const)('%s: logs in with a password file, and a wrong password is NotAuthenticated', async (method) => {
    vault.addUserpass('alice', 'correct horse', { policies: ['reader'] }, method);
    const file = path.join(newHome(), 'password');
    fs.writeFileSync(file, 'correct horse\n');
    const provider = await open({ auth: { method, username: 'alice', passwordFile: file } }, {});
    expect((await provider.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');
    expect((await provider.whoami()).user).toBe('alice');

    fs.writeFileSync(file, 'wrong');
    const error = await failure(
      (await open({ auth: { method, username: 'alice', passwordFile: file } }, {})).readCurrent('claude-code/keys/alice'),
    );
    expect(error).toBeInstanceOf(NotAuthenticated);
  });

  it('userpass without a password file uses the token `vault login -method=userpass` left, and names that command', async () => {
    newHome();
    const error = await failure(
      (await open({ auth: { method: 'userpass', username: 'alice' } }, {})).readCurrent('claude-code/keys/alice'),
    );
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect(error!.fix).toContain('vault login -address=');
    expect(error!.fix).toContain('-method=userpass username=alice');
  });

  describe('jwt (CI runners)', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwt = (claims: Record<string, unknown>) => {
      const encode = (part: unknown) => Buffer.from(JSON.stringify(part)).toString('base64url');
      const body = `${encode({ alg: 'ES256', typ: 'JWT' })}.${encode(claims)}`;
      return `${body}.${sign('sha256', Buffer.from(body), { key: privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    };
    const now = () => Math.floor(Date.now() / 1000);
    beforeAll(() => {
      vault.configureJwt(publicKey.export({ type: 'spki', format: 'pem' }).toString(), {
        'ci-reader': { boundAudiences: ['https://vault.example'], userClaim: 'user_login', policies: ['reader'] },
      });
    });

    it("logs in with the runner's JWT from a variable and resolves {user} from the role's user claim", async () => {
      const token = jwt({ aud: 'https://vault.example', user_login: 'alice', exp: now() + 300 });
      const provider = await open({ auth: { method: 'jwt', role: 'ci-reader', jwtEnv: 'VAULT_ID_TOKEN' } }, { VAULT_ID_TOKEN: token });
      const entry = await fetchFromStore({
        profile: profileFor({}),
        openProvider: async () => provider,
        osUser: () => 'runner',
        now: Date.now,
      });
      expect(entry.key).toBe('sk-test-vault-alice');
    });

    it('reports an expired, foreign or wrongly signed JWT as NotAuthenticated', async () => {
      const { privateKey: other } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const forged = (() => {
        const encode = (part: unknown) => Buffer.from(JSON.stringify(part)).toString('base64url');
        const body = `${encode({ alg: 'ES256' })}.${encode({ aud: 'https://vault.example', user_login: 'alice', exp: now() + 300 })}`;
        return `${body}.${sign('sha256', Buffer.from(body), { key: other, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
      })();
      const cases = {
        expired: jwt({ aud: 'https://vault.example', user_login: 'alice', exp: now() - 3600 }),
        audience: jwt({ aud: 'https://elsewhere.example', user_login: 'alice', exp: now() + 300 }),
        forged,
      };
      for (const [what, token] of Object.entries(cases)) {
        const file = path.join(newHome(), 'jwt');
        fs.writeFileSync(file, token);
        const error = await failure(
          (await open({ auth: { method: 'jwt', role: 'ci-reader', jwtFile: file } }, {})).readCurrent('claude-code/keys/alice'),
        );
        expect(error, what).toBeInstanceOf(NotAuthenticated);
        expect(error!.fix, what).toMatch(/JWT .*role "ci-reader"/);
      }
    });
  });
});

describe('OIDC browser login (keybroker login)', () => {
  it('follows auth_url, takes the callback on 127.0.0.1 and leaves the token in ~/.vault-token (0600)', async () => {
    const { freePort } = await import('../support/processes.ts');
    const port = await freePort();
    vault.addOidcRole('developer', [`http://localhost:${port}/oidc/callback`], { alias: 'alice', policies: ['reader'] });
    newHome();
    const provider = await open({ auth: { method: 'oidc', role: 'developer', callbackPort: port } }, {});
    const said: string[] = [];
    await provider.interactiveLogin!({
      say: (line) => said.push(line),
      // The browser: the identity provider signs the user in and redirects to the local listener.
      openBrowser: async (url) => {
        const idp = await fetch(url, { redirect: 'manual' });
        expect(idp.status).toBe(302);
        const callback = new URL(idp.headers.get('location')!);
        expect(callback.host).toBe(`localhost:${port}`);
        callback.hostname = '127.0.0.1';
        void fetch(callback).then((page) => page.text());
      },
    });
    const tokenFile = path.join(home, '.vault-token');
    expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(tokenFile, 'utf8')).toMatch(/^hvs\./);
    expect(said.join('\n')).toContain('/v1/fake-idp/authorize');
    const afterwards = await open({ auth: { method: 'oidc', role: 'developer' } }, {});
    expect((await afterwards.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');
    expect((await afterwards.whoami()).user).toBe('alice');
  });

  it('says which redirect_uri the role must allow when Vault gives no auth URL', async () => {
    const { freePort } = await import('../support/processes.ts');
    const port = await freePort();
    vault.addOidcRole('narrow', ['http://localhost:8250/oidc/callback'], { alias: 'alice', policies: ['reader'] });
    const provider = await open({ auth: { method: 'oidc', role: 'narrow', callbackPort: port } }, {});
    const error = await failure(provider.interactiveLogin!({ say: () => {}, openBrowser: async () => {} }));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.fix).toContain(`http://localhost:${port}/oidc/callback`);
  });

  it('is offered only where the profile logs in with oidc', async () => {
    expect((await open({}, { VAULT_TOKEN: 'x' })).interactiveLogin).toBeUndefined();
  });
});

describe('namespaces', () => {
  beforeAll(async () => {
    vault.addNamespace('eng');
    vault.mountKv('secret', 2, 'eng');
    vault.setPolicy('reader', { 'secret/data/claude-code/keys/*': ['read'] }, 'eng');
    await vault.kvPut('claude-code/keys/alice', { api_key: 'sk-test-vault-eng-alice' }, { namespace: 'eng' });
  });

  it("sends X-Vault-Namespace from the store (or VAULT_NAMESPACE) and reads that namespace's secret", async () => {
    const token = vault.createToken({ alias: 'alice', policies: ['reader'], namespace: 'eng' });
    expect((await (await open({ namespace: 'eng' }, { VAULT_TOKEN: token })).readCurrent('claude-code/keys/alice')).value).toBe(
      'sk-test-vault-eng-alice',
    );
    expect((await (await open({}, { VAULT_TOKEN: token, VAULT_NAMESPACE: 'eng' })).readCurrent('claude-code/keys/alice')).value).toBe(
      'sk-test-vault-eng-alice',
    );
  });

  it('rejects a namespace token in the root namespace as a login problem', async () => {
    const token = vault.createToken({ alias: 'alice', policies: ['reader'], namespace: 'eng' });
    const error = await failure((await open({}, { VAULT_TOKEN: token })).readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(NotAuthenticated);
  });
});

describe('KV details', () => {
  const admin = () => open({}, { VAULT_TOKEN: vault.createToken({ alias: 'admin', policies: ['admin'] }) });

  it('reports a soft-revoked key as revoked, and `vault kv undelete` brings it back', async () => {
    const provider = await admin();
    await provider.write('claude-code/keys/ivan', 'sk-test-vault-ivan', { labels: {} });
    await provider.revoke('claude-code/keys/ivan', { purge: false });
    const error = await failure(provider.readCurrent('claude-code/keys/ivan'));
    expect(error).toBeInstanceOf(SecretNotFound);
    expect(error!.message).toMatch(/revoked \(version 1 deleted\)/);
    await fetch(`${vault.address}/v1/secret/undelete/claude-code/keys/ivan`, {
      method: 'POST',
      headers: { 'X-Vault-Token': vault.rootToken },
      body: JSON.stringify({ versions: [1] }),
    });
    expect((await provider.readCurrent('claude-code/keys/ivan')).value).toBe('sk-test-vault-ivan');
  });

  it('stores a JSON value as separate KV fields and reads it back as JSON', async () => {
    const provider = await admin();
    const value = JSON.stringify({ api_key: 'sk-test-vault-json', expires_at: '2031-01-01T00:00:00Z' });
    await provider.write('claude-code/keys/judy', value, { labels: {} });
    const raw = await (
      await fetch(`${vault.address}/v1/secret/data/claude-code/keys/judy`, { headers: { 'X-Vault-Token': vault.rootToken } })
    ).json();
    expect(raw.data.data).toEqual({ api_key: 'sk-test-vault-json', expires_at: '2031-01-01T00:00:00Z' });
    expect(JSON.parse((await provider.readCurrent('claude-code/keys/judy')).value)).toEqual(JSON.parse(value));
  });

  it('works on a KV version 1 mount, and refuses a soft revoke there', async () => {
    const provider = await open(
      { mount: 'kv1', kvVersion: 1 },
      { VAULT_TOKEN: vault.createToken({ alias: 'admin', policies: ['admin'] }) },
    );
    const first = await provider.write('claude-code/keys/kate', 'sk-test-vault-kv1-a', { labels: {} });
    expect(first.created).toBe(true);
    const second = await provider.write('claude-code/keys/kate', 'sk-test-vault-kv1-b', { labels: {} });
    expect(second).toMatchObject({ created: false });
    expect(second.version).not.toBe(first.version);
    const current = await provider.readCurrent('claude-code/keys/kate');
    expect(current).toEqual({ value: 'sk-test-vault-kv1-b', version: second.version });
    const listed = [];
    for await (const summary of provider.list('claude-code/keys/')) listed.push(summary.name);
    expect(listed).toContain('claude-code/keys/kate');
    expect(await failure(provider.revoke('claude-code/keys/kate', { purge: false }))).toBeInstanceOf(UsageError);
    await provider.revoke('claude-code/keys/kate', { purge: true });
    expect(await failure(provider.readCurrent('claude-code/keys/kate'))).toBeInstanceOf(SecretNotFound);
  });

  it('names the mount when it does not exist', async () => {
    const provider = await open({ mount: 'nope' }, { VAULT_TOKEN: vault.rootToken });
    const error = await failure(provider.readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.fix).toMatch(/"mount"/);
  });

  it('retries a read that failed with a 5xx, and gives up as StoreUnreachable when it keeps failing', async () => {
    const provider = await open({}, { VAULT_TOKEN: vault.rootToken });
    vault.failNext(1, 502);
    expect((await provider.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-alice');
    vault.failNext(10, 500); // more than the read's four attempts, with lookup-self running alongside
    const error = await failure((await open({}, { VAULT_TOKEN: vault.rootToken })).readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect(error!.message).toMatch(/HTTP 500: internal error/);
    vault.failNext(0, 500);
  });

  it('says a sealed Vault is sealed', async () => {
    vault.setSealed(true);
    try {
      const error = await failure((await open({}, { VAULT_TOKEN: vault.rootToken })).readCurrent('claude-code/keys/alice'));
      expect(error).toBeInstanceOf(StoreUnreachable);
      expect(error!.line()).toMatch(/is sealed: ask your Vault operators to unseal it/);
    } finally {
      vault.setSealed(false);
    }
  });
});

describe('store settings', () => {
  const check = (store: unknown) => v.safeParse(storeSchema, store);
  it('accepts every documented field and rejects unknown ones', () => {
    expect(
      check({
        type: 'vault',
        address: 'https://vault.example:8200',
        namespace: 'eng',
        mount: 'kv',
        kvVersion: 1,
        caCert: '/etc/ca.pem',
        auth: { method: 'oidc', role: 'dev' },
      }).success,
    ).toBe(true);
    expect(check({ type: 'vault', adress: 'https://vault.example:8200' }).success).toBe(false);
    expect(check({ type: 'vault', auth: { method: 'oidc', password: 'x' } }).success).toBe(false);
  });
  it("requires where an unattended login's credential comes from", () => {
    expect(check({ type: 'vault', auth: { method: 'approle', roleId: 'r' } }).success).toBe(false);
    expect(check({ type: 'vault', auth: { method: 'jwt', role: 'ci' } }).success).toBe(false);
    expect(check({ type: 'vault', auth: { method: 'jwt', role: 'ci', jwtEnv: 'VAULT_ID_TOKEN' } }).success).toBe(true);
  });
});

describe('TLS', () => {
  let secure: FakeVault;
  let caFile: string;
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-vault-tls-'));
    homes.push(dir);
    const certificates = makeTestCertificates(dir);
    caFile = certificates.caFile;
    secure = await startFakeVault({ tls: certificates });
    secure.mountKv('secret', 2);
  });
  afterAll(() => secure?.stop());

  it('verifies Vault\'s certificate against "caCert" or VAULT_CACERT, and says what to set when it cannot', async () => {
    const env = { VAULT_TOKEN: secure.rootToken };
    const withCa = await open({ address: secure.address, caCert: caFile }, env);
    await withCa.write('claude-code/keys/alice', 'sk-test-vault-tls', { labels: {} });
    expect((await withCa.readCurrent('claude-code/keys/alice')).value).toBe('sk-test-vault-tls');
    expect(
      (await (await open({ address: secure.address }, { ...env, VAULT_CACERT: caFile })).readCurrent('claude-code/keys/alice')).value,
    ).toBe('sk-test-vault-tls');

    const error = await failure((await open({ address: secure.address }, env)).readCurrent('claude-code/keys/alice'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.fix).toMatch(/VAULT_CACERT/);
  });
});
