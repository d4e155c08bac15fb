// What is special about Azure beyond the shared contract: the secret-name mapping, the fake's
// faithfulness (it rejects what Key Vault and Entra ID reject), tenants, disabled secrets, the
// `expires` attribute, the DefaultAzureCredential chain and TLS trust.
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as v from 'valibot';
import {
  credentialError,
  identityFromClaims,
  keyVaultName,
  logicalName,
  mapAzureError,
  storeSchema,
  summaryOf,
  type AzureTarget,
} from '../../providers/azure.ts';
import type { Provider } from '../../providers/provider.ts';
import type { StoreConfig } from '../../providers/provider.ts';
import { AccessDenied, ConfigError, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../../src/kernel/errors.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { installFakeAzureCli, writeAzureLogin } from '../fakes/azure-cli.ts';
import { KEY_VAULT_RESOURCE, startKeyVaultFake, type KeyVaultFake } from '../fakes/azure-keyvault.ts';
import { inEnvironment, withEnvironment } from '../support/environment.ts';

const TENANT = '0b1c2d3e-0000-4000-8000-0000000000aa';
const OTHER_TENANT = '9f8e7d6c-0000-4000-8000-0000000000bb';

describe('Key Vault secret names', () => {
  it('maps a logical name with "/", "-", "@" and "." to a valid, readable vault name', () => {
    expect(keyVaultName('claude-code/keys/alice@corp.com')).toBe('claude-2dcode--keys--alice-40corp-2ecom');
    expect(keyVaultName('claude-code/keys/alice@corp.com')).toMatch(/^[0-9a-zA-Z-]{1,127}$/);
  });

  it('maps back to the logical name, and not for names keybroker did not make', () => {
    for (const name of ['claude-code/keys/alice@corp.com', 'a/-b', 'a-/b', 'Zoë_x/ÿ', 'x--y'])
      expect(logicalName(keyVaultName(name))).toBe(name);
    expect(logicalName('my-app-secret')).toBeUndefined();
    expect(logicalName('abc-zz')).toBeUndefined();
  });

  it('never maps two logical names to one vault name, even compared case-insensitively as Key Vault does', () => {
    const names = ['a/-b', 'a-/b', 'a--b', 'a//b', 'Alice', 'alice', 'a-2d', 'a.b', 'a@b', 'a_b'];
    const mapped = names.map((name) => keyVaultName(name).toLowerCase());
    expect(new Set(mapped).size).toBe(names.length);
  });

  it("refuses a name that would exceed Key Vault's 127 characters", async () => {
    const provider = (await import('../../providers/azure.ts')).createProvider(
      { type: 'azure', vaultUrl: 'https://v.vault.azure.net' },
      { timeoutMs: 1000, env: {}, profile: 'p', debug: () => {} },
    );
    const error = await provider.readCurrent(`claude-code/keys/${'a.'.repeat(40)}`).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(/127/);
  });
});

describe('Azure error classification and identity', () => {
  const target = (extra: Partial<AzureTarget['store']> = {}): AzureTarget => ({
    store: { type: 'azure', vaultUrl: 'https://kv.vault.azure.net', tenant: TENANT, ...extra },
    vaultUrl: 'https://kv.vault.azure.net',
    where: 'Azure Key Vault https://kv.vault.azure.net',
    profile: 'p',
    timeoutMs: 5000,
    tenantAsked: OTHER_TENANT,
  });
  const restError = (statusCode: number | undefined, message: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(message), { name: 'RestError', statusCode, ...extra });

  it("maps Key Vault's answers to the typed error that names the fix", () => {
    const cases: [unknown, new (...args: never[]) => Error, RegExp, RegExp?][] = [
      [
        restError(404, 'A secret with (name/id) x was not found'),
        SecretNotFound,
        /secret "claude-code\/keys\/alice" \(Key Vault name "claude-2dcode--keys--alice"\) .* does not exist/,
      ],
      [restError(403, 'Operation get is not allowed on a disabled secret.'), SecretNotFound, /is disabled \(revoked\)/],
      [restError(403, 'Caller is not authorized'), AccessDenied, /access denied to secret/, /Key Vault Secrets User/],
      // The tenant the vault's challenge asked for, not the configured one, names the login.
      [restError(401, 'Unauthorized'), NotAuthenticated, /rejected your Azure token/, new RegExp(`az login --tenant ${OTHER_TENANT}`)],
      [
        restError(409, 'Secret is currently in a deleted but recoverable state'),
        SecretNotFound,
        /deleted but recoverable/,
        /deletedsecrets\/claude-2dcode--keys--alice/,
      ],
      [restError(429, 'Too many requests'), StoreUnreachable, /is throttling requests \(HTTP 429/],
      [restError(400, 'Bad name'), ConfigError, /refused GetSecret \(Bad name\)/],
      [restError(503, 'Service Unavailable'), StoreUnreachable, /is unavailable \(HTTP 503/],
      [restError(undefined, 'connect ECONNREFUSED', { code: 'ECONNREFUSED' }), StoreUnreachable, /cannot reach .*ECONNREFUSED/],
      [
        restError(undefined, 'self signed', { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
        StoreUnreachable,
        /TLS certificate .* is not trusted/,
        /store.caFile/,
      ],
      [
        restError(undefined, "The challenge resource 'x' does not match the requested domain"),
        ConfigError,
        /not a Key Vault URL the SDK recognises/,
      ],
      [Object.assign(new Error('aborted'), { name: 'AbortError' }), StoreUnreachable, /did not answer GetSecret within 5000 ms/],
    ];
    for (const [error, type, message, fix] of cases) {
      const mapped = mapAzureError(error, 'GetSecret', 'claude-code/keys/alice', target());
      expect(mapped, (error as Error).message).toBeInstanceOf(type);
      expect(mapped.message).toMatch(message);
      if (fix) expect(mapped.fix).toMatch(fix);
    }
  });

  it('maps a failed token request to another tenant, a missing az, no network, or not signed in', () => {
    const wrongTenant = credentialError(
      new Error(`The current credential is not configured to acquire tokens for tenant ${OTHER_TENANT}. more`),
      TENANT,
      target(),
    );
    expect(wrongTenant).toBeInstanceOf(ConfigError);
    expect(wrongTenant.fix).toBe(`set store.tenant to "${OTHER_TENANT}" and run 'az login --tenant ${OTHER_TENANT}'`);
    expect(credentialError(new Error('Azure CLI could not be found.'), TENANT, target())).toBeInstanceOf(NotAuthenticated);
    expect(credentialError(new Error('request failed: getaddrinfo ENOTFOUND login.microsoftonline.com'), TENANT, target())).toBeInstanceOf(
      StoreUnreachable,
    );
    const expired = credentialError(
      new Error('ERROR: AADSTS700082: The refresh token has expired due to inactivity. Trace ID: x'),
      TENANT,
      target({ credential: 'default' }),
    );
    expect(expired).toBeInstanceOf(NotAuthenticated);
    expect(expired.message).toMatch(
      /with the DefaultAzureCredential chain .*\(AADSTS700082: The refresh token has expired due to inactivity\.\)/,
    );
    expect(expired.fix).toMatch(/AZURE_TENANT_ID/);
  });

  it('names the user by UPN (lower case), else by object id, and by object id when the profile says so', () => {
    const claims = { upn: 'Alice@Corp.com', oid: 'oid-1', tid: TENANT };
    expect(identityFromClaims(claims, undefined)).toEqual({
      user: 'alice@corp.com',
      principal: `Alice@Corp.com (object id oid-1, tenant ${TENANT})`,
    });
    expect(identityFromClaims(claims, 'oid')?.user).toBe('oid-1');
    expect(identityFromClaims({ oid: 'sp-oid', appid: 'app-1', tid: TENANT }, undefined)).toEqual({
      user: 'sp-oid',
      principal: `app app-1 (object id sp-oid, tenant ${TENANT})`,
    });
    expect(identityFromClaims({ tid: TENANT }, undefined)).toBeUndefined();
  });

  it('lists a secret with its tags as labels and its dates', () => {
    const createdOn = new Date('2026-01-02T03:04:05Z');
    expect(summaryOf('claude-code/keys/alice', { tags: { 'managed-by': 'keybroker' }, createdOn }, false)).toEqual({
      name: 'claude-code/keys/alice',
      enabled: false,
      labels: { 'managed-by': 'keybroker' },
      createdAt: createdOn,
    });
  });
});

describe('azure store configuration', () => {
  it('rejects unknown fields and a non-https vault URL', () => {
    expect(v.safeParse(storeSchema, { type: 'azure', vaultUrl: 'https://v.vault.azure.net', region: 'x' }).success).toBe(false);
    expect(v.safeParse(storeSchema, { type: 'azure', vaultUrl: 'http://v.vault.azure.net' }).success).toBe(false);
    expect(
      v.safeParse(storeSchema, {
        type: 'azure',
        vaultUrl: 'https://v.vault.azure.net',
        tenant: 'contoso.onmicrosoft.com',
        credential: 'default',
        userClaim: 'oid',
      }).success,
    ).toBe(true);
  });
});

/** A raw HTTPS request to the fake, trusting its CA. */
function call(
  fake: KeyVaultFake,
  method: string,
  pathAndQuery: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  return new Promise((resolve, reject) => {
    const request = https.request(`${fake.url()}${pathAndQuery}`, { method, headers, ca: fake.ca }, (response) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, json: text ? JSON.parse(text) : undefined }),
      );
    });
    request.on('error', reject);
    request.end(body);
  });
}

describe('the Key Vault fake rejects what the service rejects', () => {
  let fake: KeyVaultFake;
  let good: string;
  beforeAll(async () => {
    fake = await startKeyVaultFake({ tenant: TENANT });
    fake.assignRole('oid-reader', 'Key Vault Secrets User', '/');
    fake.setSecret('present', 'sk-test-present');
    good = fake.mintToken({ tid: TENANT, oid: 'oid-reader', upn: 'reader@corp.com' });
  });
  afterAll(() => fake.stop());
  const api = '?api-version=2025-07-01';

  it('answers a request without a token with 401 and the Bearer challenge naming tenant and resource', async () => {
    const response = await call(fake, 'GET', `/secrets/present${api}`);
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toBe(
      `Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="https://vault.azure.net"`,
    );
  });

  it('serves the secret bundle with attributes to a valid token', async () => {
    const response = await call(fake, 'GET', `/secrets/present${api}`, { authorization: `Bearer ${good}` });
    expect(response.status).toBe(200);
    expect(response.json.value).toBe('sk-test-present');
    expect(response.json.id).toMatch(new RegExp(`^${fake.url()}/secrets/present/[0-9a-f]{32}$`));
    expect(response.json.attributes).toMatchObject({ enabled: true, recoveryLevel: 'Recoverable+Purgeable' });
  });

  it("rejects a forged, another tenant's, another audience's or an expired token", async () => {
    const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const cases = [
      forged,
      fake.mintToken({ tid: OTHER_TENANT, oid: 'oid-reader' }),
      fake.mintToken({ tid: TENANT, oid: 'oid-reader', aud: 'https://management.azure.com' }),
      fake.mintToken({ tid: TENANT, oid: 'oid-reader', exp: Math.floor(Date.now() / 1000) - 60 }),
    ];
    const statuses = await Promise.all(
      cases.map((token) => call(fake, 'GET', `/secrets/present${api}`, { authorization: `Bearer ${token}` })),
    );
    expect(statuses.map((response) => response.status)).toEqual([401, 401, 401, 401]);
    expect(statuses[1]!.json.error.message).toMatch(/AKV10032: Invalid issuer/);
  });

  it('requires a known api-version', async () => {
    const headers = { authorization: `Bearer ${good}` };
    expect((await call(fake, 'GET', '/secrets/present', headers)).status).toBe(400);
    expect((await call(fake, 'GET', '/secrets/present?api-version=1999-01-01', headers)).status).toBe(400);
  });

  it('answers a missing secret with 404 SecretNotFound and an invalid name with 400', async () => {
    const headers = { authorization: `Bearer ${good}` };
    const missing = await call(fake, 'GET', `/secrets/absent${api}`, headers);
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('SecretNotFound');
    expect((await call(fake, 'GET', `/secrets/bad_name${api}`, headers)).status).toBe(400);
  });

  it('answers a caller without a role with 403 Forbidden', async () => {
    const stranger = fake.mintToken({ tid: TENANT, oid: 'oid-nobody' });
    const response = await call(fake, 'GET', `/secrets/present${api}`, { authorization: `Bearer ${stranger}` });
    expect(response.status).toBe(403);
    expect(response.json.error.innererror.code).toBe('ForbiddenByRbac');
  });

  it('gives Entra ID tokens only to a registered app with its secret, in its tenant', async () => {
    fake.registerApp({ clientId: 'app-1', secret: 'right', oid: 'oid-app' });
    const form = (secret: string) =>
      new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: 'app-1',
        client_secret: secret,
        scope: `${KEY_VAULT_RESOURCE}/.default`,
      }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    const ok = await call(fake, 'POST', `/${TENANT}/oauth2/v2.0/token`, headers, form('right'));
    expect(ok.status).toBe(200);
    expect(ok.json.token_type).toBe('Bearer');
    expect((await call(fake, 'POST', `/${TENANT}/oauth2/v2.0/token`, headers, form('wrong'))).json.error).toBe('invalid_client');
    expect((await call(fake, 'POST', `/${OTHER_TENANT}/oauth2/v2.0/token`, headers, form('right'))).status).toBe(400);
  });
});

describe('azure provider against the fake', () => {
  let fake: KeyVaultFake;
  let home: string;
  let bin: string;
  const store = (extra: Record<string, unknown> = {}): StoreConfig => ({
    type: 'azure',
    vaultUrl: fake.url(),
    caFile: fake.caFile,
    disableChallengeResourceVerification: true,
    ...extra,
  });
  const signedIn = (who: string, upn: string | undefined, oid: string, tenants: string[] = [TENANT]) => {
    const configDir = path.join(home, who);
    const tokens = Object.fromEntries(
      tenants.map((tenant) => [tenant, { [KEY_VAULT_RESOURCE]: fake.mintToken({ tid: tenant, oid, ...(upn ? { upn } : {}) }) }]),
    );
    writeAzureLogin(configDir, { user: upn ?? oid, tenant: tenants[0]!, tokens });
    return { PATH: `${bin}:${process.env['PATH']}`, HOME: home, AZURE_CONFIG_DIR: configDir };
  };
  async function open(config: StoreConfig, env: NodeJS.ProcessEnv, timeoutMs = 5_000): Promise<Provider> {
    const profile = {
      name: 'azure-test',
      store: config,
      secret: 'unused',
      field: 'api_key',
      user: 'store' as const,
      timeoutMs,
      cache: { backend: 'none' as const, refreshAfterMs: 60_000, fallback: 'none' as const },
    };
    return inEnvironment(env, await withEnvironment(env, () => openProvider(profile, { env, debug: () => {} })));
  }

  beforeAll(async () => {
    fake = await startKeyVaultFake({ tenant: TENANT, pageSize: 2 });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-azure-test-'));
    bin = path.join(home, 'bin');
    installFakeAzureCli(bin);
    fake.assignRole('oid-alice', 'Key Vault Secrets User', `/secrets/${keyVaultName('claude-code/keys/alice@corp.com')}`);
    fake.assignRole('oid-admin', 'Key Vault Secrets Officer', '/');
  });
  afterAll(async () => {
    await fake.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it("reports the secret's expires attribute as expiresAt, and its created time", async () => {
    const expires = Math.floor(Date.parse('2031-01-02T03:04:05Z') / 1000);
    fake.setSecret(keyVaultName('claude-code/keys/alice@corp.com'), 'sk-test-expiring', { exp: expires });
    const alice = await open(store(), signedIn('alice', 'alice@corp.com', 'oid-alice'));
    const current = await alice.readCurrent('claude-code/keys/alice@corp.com');
    expect(current.expiresAt?.toISOString()).toBe('2031-01-02T03:04:05.000Z');
    expect(current.createdAt).toBeInstanceOf(Date);
  });

  it('reports a disabled secret as such (SecretNotFound naming "disabled")', async () => {
    fake.setSecret(keyVaultName('claude-code/keys/alice@corp.com'), 'sk-test-disabled', { enabled: false });
    const alice = await open(store(), signedIn('alice', 'alice@corp.com', 'oid-alice'));
    const error = await alice.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SecretNotFound);
    expect((error as Error).message).toMatch(/disabled/);
    fake.setSecret(keyVaultName('claude-code/keys/alice@corp.com'), 'sk-test-enabled-again');
    expect((await alice.readCurrent('claude-code/keys/alice@corp.com')).value).toBe('sk-test-enabled-again');
  });

  it('with a role on her own secret only, reports any other name as AccessDenied that may also mean missing', async () => {
    const alice = await open(store(), signedIn('alice', 'alice@corp.com', 'oid-alice'));
    const error = await alice.readCurrent('claude-code/keys/nobody@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AccessDenied);
    expect((error as AccessDenied).line()).toMatch(/does not exist.*Key Vault Secrets User/);
  });

  it('resolves {user} from the object id when configured', async () => {
    const alice = await open(store({ userClaim: 'oid' }), signedIn('alice', 'alice@corp.com', 'oid-alice'));
    expect((await alice.whoami()).user).toBe('oid-alice');
  });

  it('names `az login --tenant <vault tenant>` when the CLI is signed in to another tenant only', async () => {
    const elsewhere = await open(store(), signedIn('elsewhere', 'alice@corp.com', 'oid-alice', [OTHER_TENANT]));
    const error = await elsewhere.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).fix).toBe(`run 'az login --tenant ${TENANT}'`);
  });

  it("reports a token the vault rejects (issued by another tenant) as NotAuthenticated naming the vault's tenant", async () => {
    const configDir = path.join(home, 'stale');
    const foreign = fake.mintToken({ tid: OTHER_TENANT, oid: 'oid-alice', upn: 'alice@corp.com' });
    writeAzureLogin(configDir, { user: 'alice@corp.com', tenant: TENANT, tokens: { [TENANT]: { [KEY_VAULT_RESOURCE]: foreign } } });
    const stale = await open(store(), { PATH: `${bin}:${process.env['PATH']}`, HOME: home, AZURE_CONFIG_DIR: configDir });
    const error = await stale.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).line()).toMatch(new RegExp(`AKV10032.*run 'az login --tenant ${TENANT}'`));
  });

  it("says the configured tenant is not the vault's, with the tenant to use", async () => {
    const misconfigured = await open(
      store({ tenant: OTHER_TENANT }),
      signedIn('both', 'alice@corp.com', 'oid-alice', [OTHER_TENANT, TENANT]),
    );
    const error = await misconfigured.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).line()).toContain(`az login --tenant ${TENANT}`);
  });

  it('says the Azure CLI is missing when az is not on PATH', async () => {
    const noCli = await open(store(), { PATH: '/usr/bin:/bin', HOME: home });
    const error = await noCli.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).line()).toMatch(/not installed.*aka\.ms\/azure-cli/);
  });

  it('signs in through the DefaultAzureCredential chain (service principal from the environment) when configured', async () => {
    fake.registerApp({ clientId: 'ci-app', secret: 'ci-secret-value', oid: 'oid-ci' });
    fake.assignRole('oid-ci', 'Key Vault Secrets User', '/');
    fake.setSecret(keyVaultName('claude-code/keys/oid-ci'), 'sk-test-ci');
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: home,
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: 'ci-app',
      AZURE_CLIENT_SECRET: 'ci-secret-value',
      AZURE_AUTHORITY_HOST: fake.url(),
    };
    const ci = await open(store({ credential: 'default' }), env);
    expect((await ci.whoami()).user).toBe('oid-ci');
    expect((await ci.readCurrent('claude-code/keys/oid-ci')).value).toBe('sk-test-ci');
    const wrong = await open(store({ credential: 'default' }), { ...env, AZURE_CLIENT_SECRET: 'not-it' });
    const error = await wrong.readCurrent('claude-code/keys/oid-ci').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as Error).message).toMatch(/AADSTS7000215/);
  });

  it('refuses a vault whose certificate it does not trust, naming store.caFile', async () => {
    const untrusting = await open(
      { type: 'azure', vaultUrl: fake.url(), disableChallengeResourceVerification: true },
      signedIn('alice', 'alice@corp.com', 'oid-alice'),
    );
    const error = await untrusting.readCurrent('claude-code/keys/alice@corp.com').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect((error as StoreUnreachable).line()).toMatch(/not trusted.*caFile/);
  });

  it("lists through the service's nextLink paging", async () => {
    const admin = await open(store(), signedIn('admin', 'kb-admin@corp.com', 'oid-admin'));
    for (const user of ['p1', 'p2', 'p3', 'p4', 'p5'])
      await admin.write(`claude-code/paged/${user}`, `sk-test-paged-${user}`, { labels: {} });
    const names = [];
    for await (const summary of admin.list('claude-code/paged/')) names.push(summary.name);
    expect(names.sort()).toEqual(['p1', 'p2', 'p3', 'p4', 'p5'].map((user) => `claude-code/paged/${user}`));
    expect(fake.requests.filter((request) => request.path === '/secrets' && request.authorized).length).toBeGreaterThanOrEqual(3);
  });
});
