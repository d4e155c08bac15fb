// `keybroker status --check`: who the store says the developer is and whether their secret reads, for a support desk.
import { describe, expect, it } from 'vitest';
import { checkStore, formatStoreCheck, type StoreCheck } from '../../src/broker/store-check.ts';
import { SecretNotFound, UsageError } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import type { Profile } from '../../src/config/config.ts';
import type { Provider } from '../../providers/provider.ts';
import { FakeStore, testProfile } from './fakes.ts';

/** A check of `profile` against a fake store that knows the developer as alice (principal arn:…/alice) while the OS login is carol. */
function check(profile: Profile, overrides: Partial<Provider> = {}, store = new FakeStore()) {
  const provider: Provider = {
    ...store.provider(),
    whoami: async () => ({ user: 'alice', principal: 'arn:aws:iam::1:user/alice' }),
    ...overrides,
  };
  return checkStore({ profile, openProvider: async () => provider, osUser: () => 'carol' });
}

describe('checkStore', () => {
  it('reads the secret the OS login names and reports its version and fingerprint, never the key', async () => {
    const store = new FakeStore();
    let asked: string | undefined;
    const result = await check(
      testProfile(),
      {
        readCurrent: async (name) => {
          asked = name;
          return { value: 'sk-test-check', version: 'v9' };
        },
      },
      store,
    );
    expect(asked).toBe('claude-code/keys/carol');
    expect(result).toEqual({
      check: {
        store: 'the fake store',
        principal: 'arn:aws:iam::1:user/alice',
        user: 'carol',
        userFrom: 'os',
        secret: 'claude-code/keys/carol',
        readable: true,
        version: 'v9',
        fingerprint: fingerprint('sk-test-check'),
      },
    });
  });

  it('with "user": "store", names the secret after the store identity', async () => {
    const { check: result } = await check({ ...testProfile(), user: 'store' });
    expect(result).toMatchObject({ user: 'alice', userFrom: 'store', secret: 'claude-code/keys/alice', readable: true });
  });

  it('a store identity that cannot be a secret name says where the name came from', async () => {
    const reading = check({ ...testProfile(), user: 'store' }, { whoami: async () => ({ user: '../x', principal: 'p' }) });
    await expect(reading).rejects.toThrow('the user name "../x" from the store identity (the fake store) cannot be used');
    const osLogin = checkStore({ profile: testProfile(), openProvider: async () => new FakeStore().provider(), osUser: () => '../y' });
    await expect(osLogin).rejects.toThrow('the user name "../y" from the OS login cannot be used');
  });

  it('reports the expiry get acts on: the earlier of the JSON expires_at and the store own', async () => {
    const store = new FakeStore();
    store.value = { value: 'sk-test-check', version: 'v9', expiresAt: new Date('2027-01-01T00:00:00Z') };
    expect((await check(testProfile(), {}, store)).check.expiresAt).toBe('2027-01-01T00:00:00.000Z');
    const json = (expires: string) => JSON.stringify({ api_key: 'sk-test-check', expires_at: expires });
    store.value = { value: json('2026-12-24T00:00:00Z'), version: 'v10', expiresAt: new Date('2027-01-01T00:00:00Z') };
    expect((await check(testProfile(), {}, store)).check.expiresAt).toBe('2026-12-24T00:00:00.000Z');
    store.value = { value: json('2027-06-01T00:00:00Z'), version: 'v11', expiresAt: new Date('2027-01-01T00:00:00Z') };
    expect((await check(testProfile(), {}, store)).check.expiresAt).toBe('2027-01-01T00:00:00.000Z');
    store.value = { value: 'sk-test-check', version: 'v12' };
    expect((await check(testProfile(), {}, store)).check).not.toHaveProperty('expiresAt');
  });

  it('a secret that cannot be read is reported with the line get would print, and the error to exit with', async () => {
    const store = new FakeStore();
    const missing = new SecretNotFound('secret "claude-code/keys/carol" not found', "ask your admin to run 'keybroker admin put'");
    store.fail = () => missing;
    const result = await check(testProfile(), {}, store);
    expect(result.failure).toBe(missing);
    expect(result.check).toEqual({
      store: 'the fake store',
      principal: 'arn:aws:iam::1:user/alice',
      user: 'carol',
      userFrom: 'os',
      secret: 'claude-code/keys/carol',
      readable: false,
      error: `secret "claude-code/keys/carol" not found: ask your admin to run 'keybroker admin put'`,
    });
  });

  it('an unusable value is a failure too; a bug (not a keybroker error) is thrown, not reported', async () => {
    const store = new FakeStore();
    store.rotate('', 'v2', {});
    const result = await check(testProfile(), {}, store);
    expect(result.check.readable).toBe(false);
    expect(result.failure?.exitCode).toBe(8);
    expect(result.check.error).toContain('secret "claude-code/keys/carol"');
    const bug = new TypeError('a bug');
    store.fail = () => bug;
    await expect(check(testProfile(), {}, store)).rejects.toBe(bug);
  });

  it('an SSO profile reads no store: a usage error that points to doctor, before any store is opened', async () => {
    const sso = { ...testProfile(), oidc: { issuer: 'https://login.test', clientId: 'kb' } };
    let opened = false;
    const reading = checkStore({
      profile: sso,
      openProvider: async () => {
        opened = true;
        return new FakeStore().provider();
      },
      osUser: () => 'carol',
    });
    await expect(reading).rejects.toThrow(UsageError);
    await expect(reading).rejects.toThrow('profile "default" signs in with SSO, it reads no store');
    await reading.catch((error: UsageError) => expect(error.fix).toBe("run 'keybroker doctor' to check the sign-in and the token"));
    expect(opened).toBe(false);
  });
});

describe('formatStoreCheck', () => {
  const readable: StoreCheck = {
    store: 'AWS Secrets Manager (us-east-1)',
    principal: 'arn:aws:iam::1:user/alice',
    user: 'alice',
    userFrom: 'store',
    secret: 'claude-code/keys/alice',
    readable: true,
    version: 'v9',
    fingerprint: 'sha256:0123abcd',
  };

  it('three aligned lines: the store, who you are and where {user} came from, the secret and its state', () => {
    expect(formatStoreCheck(readable)).toBe(
      [
        'store:    AWS Secrets Manager (us-east-1)',
        'you are:  arn:aws:iam::1:user/alice ({user} = alice, from the store identity)',
        'secret:   "claude-code/keys/alice": readable, version v9, sha256:0123abcd',
        '',
      ].join('\n'),
    );
    expect(formatStoreCheck({ ...readable, expiresAt: '2027-01-01T00:00:00.000Z' })).toContain(
      'readable, version v9, sha256:0123abcd, expires 2027-01-01T00:00:00.000Z\n',
    );
  });

  it('an unreadable secret, with {user} from the OS login', () => {
    const text = formatStoreCheck({ ...readable, userFrom: 'os', readable: false, error: 'secret not found: ask' });
    expect(text.split('\n').slice(1)).toEqual([
      'you are:  arn:aws:iam::1:user/alice ({user} = alice, from the OS login)',
      'secret:   "claude-code/keys/alice": NOT readable (below)',
      '',
    ]);
  });
});
