// The Vault provider's helpers, each alone (no server): Vault's error JSON, answers of the wrong
// shape, KV v1/v2 paths and values, the token's source and renewal, `{user}`, the login command.
// The store itself (the fake Vault) is vault.test.ts's and the contract suite's.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProviderContext, StoreConfig } from '../../providers/provider.ts';
import { createProvider } from '../../providers/vault.ts';
import { answerOf, KvWritten } from '../../providers/vault/answers.ts';
import { deadline, parseBody, unexpected, vaultContext, vaultMessage, type VaultStore } from '../../providers/vault/connection.ts';
import { dataPath, kvData, kvValue, metadataPath, summaryFromMetadata } from '../../providers/vault/kv.ts';
import { loginCommand, renewalDue, storedToken, userFromToken } from '../../providers/vault/token.ts';
import { ConfigError, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../../src/kernel/errors.ts';

const homes: string[] = [];
afterAll(() => {
  for (const home of homes) fs.rmSync(home, { recursive: true, force: true });
});

function vaultFor(store: Partial<VaultStore> = {}, env: NodeJS.ProcessEnv = {}) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-vault-unit-'));
  homes.push(home);
  const context: ProviderContext = { timeoutMs: 5000, env: { HOME: home, ...env }, profile: 'p', debug: () => {} };
  return vaultContext({ type: 'vault', ...store }, context, store.address ?? 'https://vault.example.com:8200');
}
const WHERE = 'Vault at https://vault.example.com:8200, KV v2 mount "secret"';

describe('Vault answers', () => {
  it("reads Vault's error JSON: the bullets of each error, joined; the status when there are none", () => {
    const body = {
      errors: [
        '1 error occurred:\n\t* permission denied\n\n',
        '2 errors occurred:\n\t* check-and-set parameter did not match\n\t* try again\n\n',
        'plain',
      ],
    };
    expect(vaultMessage({ status: 403, body })).toBe('permission denied; check-and-set parameter did not match; try again; plain');
    expect(vaultMessage({ status: 502, body: { errors: [] } })).toBe('HTTP 502');
    expect(vaultMessage({ status: 404, body: undefined })).toBe('HTTP 404');
  });

  it("keeps a body that is not Vault's JSON (a proxy's page) as an error text, cut at 200 characters", () => {
    expect(parseBody('')).toBeUndefined();
    expect(parseBody('{"data":{"keys":["a"]}}')).toEqual({ data: { keys: ['a'] } });
    const page = `<html>${'x'.repeat(300)}</html>`;
    expect(parseBody(page)).toEqual({ errors: [page.slice(0, 200)] });
    expect(parseBody('["not", "an", "object"]')?.errors).toHaveLength(1);
  });

  it('refuses an answer of the wrong shape as StoreUnreachable naming the field, never the value received', () => {
    const error = (() => {
      try {
        answerOf(KvWritten, { version: 'sk-test-not-a-version' }, 'the write of secret "x"', WHERE);
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error).toBeInstanceOf(StoreUnreachable);
    expect(error!.message).toBe(
      `${WHERE} answered the write of secret "x" with something keybroker does not understand (version: expected number)`,
    );
    expect(error!.message).not.toContain('sk-test');
    expect(answerOf(KvWritten, { version: 3, extra: true }, 'w', WHERE)).toEqual({ version: 3, extra: true });
  });

  it('maps the statuses no caller handles: a missing token, sealed, throttled, a failed call, no such path', () => {
    const vault = vaultFor();
    const call = deadline(vault, 'read of secret "x"');
    const answer = (status: number, message: string) =>
      unexpected(vault, { status, headers: {}, body: { errors: [message] } }, call, 'secret "x"', "run 'vault login'");
    expect(answer(400, 'missing client token')).toBeInstanceOf(NotAuthenticated);
    expect(answer(400, 'missing client token').fix).toBe("run 'vault login'");
    expect(answer(503, 'Vault is sealed').message).toBe(`${vault.where} is sealed`);
    expect(answer(429, 'request path "x": rate limit quota exceeded').message).toMatch(/is throttling requests \(HTTP 429: request path/);
    expect(answer(500, 'internal error')).toBeInstanceOf(StoreUnreachable);
    expect(answer(404, 'no handler for route')).toBeInstanceOf(ConfigError);
    expect(answer(404, 'no handler for route').fix).toMatch(/"mount", "kvVersion" and "namespace"/);
    expect(answer(405, 'unsupported operation').message).toMatch(/refused read of secret "x" for secret "x" \(HTTP 405/);
  });
});

describe('Vault KV', () => {
  it('puts data and metadata under data/ and metadata/ in KV v2, both at the mount in v1, each segment escaped', () => {
    expect(dataPath({ kvVersion: 2, mount: 'secret' }, 'claude-code/keys/alice@corp.com')).toBe(
      'secret/data/claude-code/keys/alice%40corp.com',
    );
    expect(metadataPath({ kvVersion: 2, mount: 'team/kv' }, 'a b/c')).toBe('team/kv/metadata/a%20b/c');
    expect(dataPath({ kvVersion: 1, mount: 'kv1' }, 'a/b?c')).toBe('kv1/a/b%3Fc');
    expect(metadataPath({ kvVersion: 1, mount: 'kv1' }, 'a/b')).toBe('kv1/a/b');
  });

  it("reads a one-string map as the key itself, any other map as its JSON, with the version's metadata", () => {
    const read = kvValue(
      {
        data: { api_key: 'sk-test-a' },
        metadata: { version: 4, created_time: '2026-01-02T03:04:05Z', deletion_time: '2026-02-01T00:00:00Z', destroyed: false },
      },
      2,
      'x',
      WHERE,
    );
    expect(read).toEqual({
      value: 'sk-test-a',
      version: '4',
      createdAt: new Date('2026-01-02T03:04:05Z'),
      expiresAt: new Date('2026-02-01T00:00:00Z'),
    });
    expect(
      kvValue(
        { data: { api_key: 'sk-test-b', expires_at: '2027-01-01T00:00:00Z' }, metadata: { version: 1, deletion_time: '' } },
        2,
        'x',
        WHERE,
      ),
    ).toEqual({ value: '{"api_key":"sk-test-b","expires_at":"2027-01-01T00:00:00Z"}', version: '1' });
    const v1 = kvValue({ api_key: 'sk-test-c' }, 1, 'x', WHERE);
    expect(v1.value).toBe('sk-test-c');
    expect(v1.version).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(kvValue({ api_key: 'sk-test-d' }, 1, 'x', WHERE).version).not.toBe(v1.version);
  });

  it('reports a version without data as not found, and a map of the wrong shape as an answer not understood', () => {
    expect(() => kvValue({ data: null, metadata: { version: 2, destroyed: true } }, 2, 'x', WHERE)).toThrow(SecretNotFound);
    expect(() => kvValue(undefined, 1, 'x', WHERE)).toThrow(SecretNotFound);
    expect(() => kvValue({ data: 'sk-test-raw' }, 2, 'x', WHERE)).toThrow(StoreUnreachable);
    expect(() => kvValue('sk-test-raw', 1, 'x', WHERE)).toThrow(StoreUnreachable);
  });

  it("writes a JSON object's fields as they are, anything else under api_key", () => {
    expect(kvData('{"api_key":"sk-test-e","team":"a"}')).toEqual({ api_key: 'sk-test-e', team: 'a' });
    expect(kvData('sk-test-f')).toEqual({ api_key: 'sk-test-f' });
    expect(kvData('["sk-test-g"]')).toEqual({ api_key: '["sk-test-g"]' });
  });

  it('lists a secret enabled while its current version is neither destroyed nor past its deletion time', () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    const metadata = (current: Record<string, unknown>) => ({
      current_version: 2,
      created_time: '2026-01-01T00:00:00Z',
      custom_metadata: { 'managed-by': 'keybroker' },
      versions: { '1': {}, '2': current },
    });
    expect(summaryFromMetadata('x', metadata({ deletion_time: '' }), now)).toEqual({
      name: 'x',
      enabled: true,
      version: '2',
      createdAt: new Date('2026-01-01T00:00:00Z'),
      labels: { 'managed-by': 'keybroker' },
    });
    expect(summaryFromMetadata('x', metadata({ destroyed: true }), now).enabled).toBe(false);
    expect(summaryFromMetadata('x', metadata({ deletion_time: '2026-05-01T00:00:00Z' }), now).enabled).toBe(false);
    const scheduled = summaryFromMetadata('x', metadata({ deletion_time: '2026-07-01T00:00:00Z' }), now);
    expect(scheduled).toMatchObject({ enabled: true, expiresAt: new Date('2026-07-01T00:00:00Z') });
    expect(summaryFromMetadata('x', undefined, now)).toEqual({ name: 'x', enabled: false, labels: {} });
  });
});

describe('Vault token and identity', () => {
  it('takes VAULT_TOKEN before ~/.vault-token, and names the login command when there is neither', () => {
    const vault = vaultFor({}, { VAULT_TOKEN: ' hvs.test-env \n' });
    fs.writeFileSync(vault.tokenFile, 'hvs.test-file\n');
    expect(storedToken(vault)).toEqual({ token: 'hvs.test-env', source: 'VAULT_TOKEN', fresh: false });
    const fileOnly = vaultFor();
    fs.writeFileSync(fileOnly.tokenFile, 'hvs.test-file\n');
    expect(storedToken(fileOnly)).toEqual({ token: 'hvs.test-file', source: '~/.vault-token', fresh: false });
    const none = vaultFor({ address: 'https://vault.corp:8200' });
    expect(() => storedToken(none)).toThrow(NotAuthenticated);
    expect(() => storedToken(none)).toThrow(/no token in VAULT_TOKEN or ~\/.vault-token/);
  });

  it('renews a renewable token once less than a third of its TTL is left', () => {
    expect(renewalDue({ renewable: true, ttl: 100, creation_ttl: 3600 })).toBe(true);
    expect(renewalDue({ renewable: true, ttl: 2000, creation_ttl: 3600 })).toBe(false);
    expect(renewalDue({ renewable: false, ttl: 100, creation_ttl: 3600 })).toBe(false);
    // A root token's TTL is 0: it never expires.
    expect(renewalDue({ renewable: true, ttl: 0, creation_ttl: 0 })).toBe(false);
  });

  it("names {user} by an entity name an admin gave, else the auth method's user name, else the alias in the display name", () => {
    expect(userFromToken({ display_name: 'oidc-alice@corp.com' }, 'alice')).toBe('alice');
    expect(userFromToken({ display_name: 'oidc-alice@corp.com', path: 'auth/oidc/oidc/callback' }, 'entity_0a1b2c3d')).toBe(
      'alice@corp.com',
    );
    expect(userFromToken({ display_name: 'userpass-bob', meta: { username: 'bob' } })).toBe('bob');
    expect(userFromToken({ display_name: 'approle', meta: { role_name: 'ci-job' } })).toBe('ci-job');
    expect(userFromToken({ display_name: 'team-sso-carol', path: 'auth/team/sso/login/carol' })).toBe('carol');
    expect(userFromToken({ display_name: 'token-dave' })).toBe('dave');
    expect(userFromToken({ display_name: 'root' })).toBe('');
  });

  it("prints the vault CLI command of the profile's login method, with only the flags the environment does not already give", () => {
    expect(loginCommand(vaultFor({}))).toBe('vault login');
    expect(loginCommand(vaultFor({ address: 'https://vault.corp:8200', namespace: 'eng' }, { VAULT_NAMESPACE: 'eng' }))).toBe(
      'vault login -address=https://vault.corp:8200',
    );
    expect(loginCommand(vaultFor({ auth: { method: 'oidc', mount: 'sso', role: 'dev', callbackPort: 8400 } }))).toBe(
      'vault login -method=oidc -path=sso role=dev port=8400',
    );
    expect(loginCommand(vaultFor({ auth: { method: 'userpass', username: 'alice' } }))).toBe('vault login -method=userpass username=alice');
    expect(loginCommand(vaultFor({ auth: { method: 'approle', roleId: 'r-1', secretIdEnv: 'SECRET_ID' } }))).toBe(
      'vault write auth/approle/login role_id=r-1 secret_id=-',
    );
    expect(loginCommand(vaultFor({ auth: { method: 'jwt', mount: 'gitlab', role: 'ci', jwtEnv: 'CI_JOB_JWT' } }))).toBe(
      'vault write auth/gitlab/login role=ci jwt=$CI_JOB_JWT',
    );
  });

  it('describes the store by address, namespace, KV version and mount', () => {
    expect(vaultFor({ namespace: 'eng', mount: 'kv', kvVersion: 1 }).where).toBe(
      'Vault at https://vault.example.com:8200 (namespace eng), KV v1 mount "kv"',
    );
  });
});

describe('Vault answers through the provider', () => {
  it('a read answered 200 with a body of the wrong shape (a proxy, another API) is StoreUnreachable naming the field, never the value', async () => {
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (req.url?.startsWith('/v1/auth/token/lookup-self')) return res.end(JSON.stringify({ data: { display_name: 'token' } }));
      res.end(JSON.stringify({ data: { data: 'sk-test-wrong-shape', metadata: { version: 1 } } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const address = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const store = { type: 'vault', address } as StoreConfig;
      const provider = createProvider(store, { timeoutMs: 5000, env: { VAULT_TOKEN: 'hvs.test' }, profile: 'p', debug: () => {} });
      const error = (await provider.readCurrent('claude-code/keys/alice').catch((caught: unknown) => caught)) as Error;
      expect(error).toBeInstanceOf(StoreUnreachable);
      expect(error.message).toMatch(
        /answered the read of secret "claude-code\/keys\/alice" with something keybroker does not understand \(data: expected/,
      );
      expect(error.message).not.toContain('sk-test-wrong-shape');
    } finally {
      server.close();
    }
  });
});
