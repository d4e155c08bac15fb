// The doctor's checks one at a time, in-process: each is a function over { deps, state }, so a
// verdict is pinned here without a store, a gateway or Claude Code (the binary's tests cover those).
import { describe, expect, test } from 'vitest';
import type { CheckOutcome } from '../../src/doctor/check.ts';
import type { CheckContext, DoctorDeps, DoctorState } from '../../src/doctor/state.ts';
import type { LoadedConfig, Profile } from '../../src/config/config.ts';
import type { CacheStore } from '../../src/cache/cache-store.ts';
import type { SettingsFile } from '../../src/claude/settings.ts';
import { CacheUnavailable, ExitCode } from '../../src/kernel/errors.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { checkKeyExpiry, checkKeyUsable, checkSecretName } from '../../src/doctor/store-checks.ts';
import { checkCacheBackend, checkCacheRoundTrip, checkCachedKey } from '../../src/doctor/cache-checks.ts';
import { checkForcedLogin, checkHelperTtl, checkKeyOverrides, checkSettingsFiles } from '../../src/doctor/claude-checks.ts';
import { accessTokenOutcome, discoveryOutcome } from '../../src/doctor/sso-checks.ts';
import { checkGatewayUrl, describeFailure, listedModels, streamTiming } from '../../src/doctor/gateway-checks.ts';
import { memoryCache, MINUTE, testProfile } from '../broker/fakes.ts';

const NOW = Date.UTC(2026, 0, 15, 12);
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const KEY = 'sk-test-checks-0123456789abcdef';

function loaded(profile: Profile = testProfile()): LoadedConfig {
  return { layers: [], profile, sources: {}, overridden: {}, enforced: [] };
}

/** A context whose deps refuse every I/O a check under test must not need. */
function context(state: DoctorState = {}, deps: Partial<DoctorDeps> = {}): CheckContext {
  return {
    deps: {
      env: {},
      configRequest: { env: {} },
      projectDir: '/nonexistent',
      platform: 'linux',
      now: () => NOW,
      osUser: () => 'alice',
      openProvider: async () => {
        throw new Error('no store in a unit test');
      },
      keychain: () => {
        throw new Error('no keychain in a unit test');
      },
      fetch: async () => {
        throw new Error('no network in a unit test');
      },
      models: [],
      debug: () => {},
      ...deps,
    },
    state,
  };
}

const settings = (data: Record<string, unknown>, scope: SettingsFile['scope'] = 'user'): SettingsFile => ({
  scope,
  path: `/home/alice/.claude/${scope}.json`,
  exists: true,
  data,
});

describe('store.expiry', () => {
  const expiring = (inMs: number) => checkKeyExpiry(context({ config: loaded(), key: KEY, storeExpiresAt: new Date(NOW + inMs) }));

  test('a key within the clock slack of its expiry is a FAIL that get refuses, with how long ago when already past', () => {
    expect(expiring(-HOUR)).toMatchObject({
      verdict: 'FAIL',
      finding: 'the key expired at 2026-01-15T11:00:00.000Z (1h ago); get refuses it',
      fix: 'ask your admin to rotate it (keybroker admin rotate)',
    });
    // Not yet past, but inside the one-minute slack: get already refuses it.
    expect(expiring(MINUTE)).toMatchObject({ verdict: 'FAIL', finding: 'the key expired at 2026-01-15T12:01:00.000Z; get refuses it' });
  });

  test("inside get's margin (twice Claude Code's TTL plus the slack) it warns that every get refreshes", () => {
    // The default TTL is 5 minutes: the margin is 11 minutes.
    expect(expiring(11 * MINUTE)).toMatchObject({ verdict: 'WARN', fix: 'ask your admin to rotate it soon' });
    expect(expiring(11 * MINUTE).finding).toContain('in 11m: get already refreshes it on every call');
    expect(expiring(11 * MINUTE + 1).finding).not.toContain('refreshes it on every call');
  });

  test('within a week it warns to rotate before then; later it is fine', () => {
    expect(expiring(7 * DAY)).toMatchObject({ verdict: 'WARN', fix: 'ask your admin to rotate it before then' });
    expect(expiring(7 * DAY + 1)).toMatchObject({
      verdict: 'OK',
      finding: expect.stringMatching(/^expires at 2026-01-22T12:00:00.001Z, in 7d/),
    });
  });

  test("a longer TTL in Claude Code's environment widens the margin", () => {
    const outcome = checkKeyExpiry(
      context(
        { config: loaded(), key: KEY, storeExpiresAt: new Date(NOW + 30 * MINUTE) },
        { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(HOUR) } },
      ),
    );
    expect(outcome.finding).toContain('get already refreshes it on every call');
  });

  test('no expiry is fine; no key read is a SKIP', () => {
    expect(checkKeyExpiry(context({ config: loaded(), key: KEY }))).toMatchObject({
      verdict: 'OK',
      finding: 'no expiry set (expires_at absent)',
    });
    expect(checkKeyExpiry(context({ config: loaded() })).verdict).toBe('SKIP');
  });
});

describe('store.secret-name and store.value', () => {
  test('fills {user} from the OS login and says where it came from', () => {
    const state: DoctorState = {
      config: loaded({ ...testProfile(), store: { type: 'vault', address: 'https://vault.example.com' } as Profile['store'] }),
    };
    expect(checkSecretName(context(state))).toMatchObject({
      verdict: 'OK',
      finding: '"claude-code/keys/alice" (template "claude-code/keys/{user}", {user} = "alice" from the OS login)',
    });
    expect(state.secret).toBe('claude-code/keys/alice');
  });

  test('a name without {user} is one shared key: WARN', () => {
    const state: DoctorState = { config: loaded({ ...testProfile(), secret: 'claude-code/team-key' }) };
    const outcome = checkSecretName(context(state));
    expect(outcome.verdict).toBe('WARN');
    expect(outcome.finding).toContain('every developer reads this one shared key');
  });

  test('{user} from the store identity waits for the identity check', () => {
    const state: DoctorState = { config: loaded({ ...testProfile(), user: 'store' }) };
    expect(checkSecretName(context(state))).toMatchObject({ verdict: 'SKIP', fix: 'fix the store identity first' });
    expect(state.secret).toBeUndefined();
  });

  test("keeps the key for the gateway checks, drops the raw value, and keeps the earlier of the value's and the store's expiry", () => {
    const state: DoctorState = {
      config: loaded(),
      secret: 'claude-code/keys/alice',
      version: 'v3',
      rawValue: JSON.stringify({ api_key: KEY, expires_at: '2026-02-01T00:00:00Z' }),
      storeExpiresAt: new Date('2026-03-01T00:00:00Z'),
    };
    expect(checkKeyUsable(context(state))).toMatchObject({
      verdict: 'OK',
      finding: `a key Claude Code accepts: ${fingerprint(KEY)}, ${KEY.length} characters`,
    });
    expect(state).toMatchObject({ key: KEY, keyFrom: 'the store (version v3)', rawValue: undefined });
    expect(state.storeExpiresAt?.toISOString()).toBe('2026-02-01T00:00:00.000Z');
  });
});

describe('cache checks', () => {
  test('a round trip through a working cache is OK and leaves nothing behind', async () => {
    const cache = memoryCache();
    const outcome = await checkCacheRoundTrip(context({ cache }));
    expect(outcome).toMatchObject({ verdict: 'OK', details: { backend: 'file' } });
    expect(outcome.finding).toMatch(/^wrote, read and deleted a test entry in the file cache in \d+ ms$/);
    expect(cache.data.size).toBe(0);
  });

  test('a cache that loses what it was given is a FAIL; one that cannot delete is a WARN', async () => {
    const losing: CacheStore = { ...memoryCache(), write: async () => {} };
    expect(await checkCacheRoundTrip(context({ cache: losing }))).toMatchObject({
      verdict: 'FAIL',
      finding: 'wrote a test entry to the file cache but read back nothing',
    });
    const keeping = memoryCache();
    const sticky: CacheStore = { ...keeping, remove: async () => false };
    const outcome = await checkCacheRoundTrip(context({ cache: sticky }));
    expect(outcome).toMatchObject({ verdict: 'WARN', fix: 'delete it by hand' });
  });

  test('"auto" with a keychain that refuses a write falls back as the profile says; "keychain" is a FAIL', async () => {
    const refusing = () => ({
      kind: 'keychain' as const,
      read: async () => undefined,
      write: async () => {
        throw new CacheUnavailable('the Secret Service keyring is locked', 'unlock it');
      },
      remove: async () => false,
    });
    const auto: DoctorState = { config: loaded(testProfile({ backend: 'auto' })) };
    const none = await checkCacheBackend(context(auto, { keychain: refusing, env: { HOME: '/home/alice' } }));
    expect(none).toMatchObject({ verdict: 'WARN', details: { backend: 'none', configured: 'auto' } });
    expect(none.finding).toContain('using no cache (every call reads the store) ("fallback": "none")');
    expect(none.fix).toContain('"fallback": "file"');
    expect(auto.cache?.kind).toBe('none');

    const file: DoctorState = { config: loaded(testProfile({ backend: 'auto', fallback: 'file' })) };
    const fell = await checkCacheBackend(context(file, { keychain: refusing, env: { HOME: '/home/alice' } }));
    expect(fell).toMatchObject({ verdict: 'WARN', fix: 'unlock it', details: { backend: 'file' } });
    expect(file.cache?.kind).toBe('file');

    const insisting: DoctorState = { config: loaded(testProfile({ backend: 'keychain' })) };
    expect(await checkCacheBackend(context(insisting, { keychain: refusing, env: { HOME: '/home/alice' } }))).toMatchObject({
      verdict: 'FAIL',
      fix: 'unlock it',
      exitCode: ExitCode.cacheUnavailable,
    });
    expect(insisting.cache).toBeUndefined();
  });

  test("the cached entry gives the gateway checks a key when the store gave none, never over the store's", async () => {
    const profile = testProfile();
    const cache = memoryCache();
    const entry = { key: KEY, version: 'v2', secret: 'claude-code/keys/alice', fetchedAt: NOW - 2 * MINUTE };
    await cache.write(
      cacheAccount(profile, () => 'alice'),
      serializeEntry(entry),
    );
    const fromCache: DoctorState = { config: loaded(profile), cache };
    const outcome = await checkCachedKey(context(fromCache));
    expect(outcome).toMatchObject({ verdict: 'OK', details: { cached: true, fingerprint: fingerprint(KEY), freshness: 'fresh' } });
    expect(outcome.finding).toBe(`cached ${fingerprint(KEY)}, version v2 of "claude-code/keys/alice", read 2m ago, fresh`);
    expect(fromCache).toMatchObject({ key: KEY, keyFrom: 'the cache (version v2)' });

    const storeFirst: DoctorState = {
      config: loaded(profile),
      cache,
      key: 'sk-test-from-store',
      keyFrom: 'the store (version v3)',
      version: 'v3',
    };
    expect((await checkCachedKey(context(storeFirst))).finding).toContain('the store has version v3, which the next refresh picks up');
    expect(storeFirst.key).toBe('sk-test-from-store');
  });
});

describe('Claude Code checks', () => {
  test('names each key override and where it is set, never its value', () => {
    const outcome = checkKeyOverrides(
      context(
        { claudeFiles: [settings({ env: { ANTHROPIC_AUTH_TOKEN: 'sk-test-token-value' } })] },
        { env: { ANTHROPIC_API_KEY: 'sk-test-env-value' } },
      ),
    );
    expect(outcome.verdict).toBe('FAIL');
    expect(outcome.finding).toContain('ANTHROPIC_AUTH_TOKEN in user settings');
    expect(outcome.finding).toContain('ANTHROPIC_API_KEY in the environment');
    expect(outcome.finding).toContain("Claude Code sends it as x-api-key instead of keybroker's key");
    expect(JSON.stringify(outcome)).not.toMatch(/token-value|env-value/);
    expect(checkKeyOverrides(context({ claudeFiles: [] })).verdict).toBe('OK');
  });

  test('a forced login in any settings file is a FAIL naming the file', () => {
    const outcome = checkForcedLogin(context({ claudeFiles: [settings({ forceLoginMethod: 'claudeai' }, 'managed')] }));
    expect(outcome).toMatchObject({
      verdict: 'FAIL',
      details: { forced: ['forceLoginMethod="claudeai" in managed settings /home/alice/.claude/managed.json'] },
    });
  });

  test('a settings file Claude Code cannot parse is a FAIL; no file at all a WARN', () => {
    const broken: SettingsFile = { scope: 'user', path: '/home/alice/.claude/settings.json', exists: true, error: 'it is not valid JSON' };
    expect(checkSettingsFiles(context({ claudeFiles: [broken] }))).toMatchObject({
      verdict: 'FAIL',
      finding: 'user settings /home/alice/.claude/settings.json: it is not valid JSON',
    });
    const absent: SettingsFile = { scope: 'user', path: '/home/alice/.claude/settings.json', exists: false };
    expect(checkSettingsFiles(context({ claudeFiles: [absent] })).verdict).toBe('WARN');
  });

  test("the helper TTL: not a positive number is a FAIL, longer than keybroker's refresh a WARN", () => {
    const config = loaded(testProfile({ refreshAfterMs: 10 * MINUTE }));
    const ttl = (value: string) =>
      checkHelperTtl(context({ config, claudeFiles: [] }, { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: value } }));
    expect(ttl('0')).toMatchObject({ verdict: 'FAIL', details: { value: '0' } });
    expect(ttl('5m').verdict).toBe('FAIL');
    expect(ttl(String(10 * MINUTE))).toMatchObject({
      verdict: 'OK',
      finding: 'CLAUDE_CODE_API_KEY_HELPER_TTL_MS=600000 (10m) in the environment',
    });
    expect(ttl(String(10 * MINUTE + 1))).toMatchObject({ verdict: 'WARN', fix: "lower it as 'keybroker setup' prints" });
    // Unset: Claude Code's 5-minute default against a 1-minute refresh.
    const short = loaded(testProfile({ refreshAfterMs: MINUTE }));
    expect(checkHelperTtl(context({ config: short, claudeFiles: [] })).verdict).toBe('WARN');
    expect(checkHelperTtl(context({ config, claudeFiles: [] })).verdict).toBe('OK');
  });
});

describe('SSO checks', () => {
  const oidcProfile = (oidc: Record<string, unknown> = {}) =>
    ({
      ...testProfile(),
      store: undefined,
      oidc: { issuer: 'https://idp.example.com', clientId: 'keybroker', flow: 'device', resource: 'https://gateway.example.com', ...oidc },
    }) as Profile & { oidc: NonNullable<Profile['oidc']> };
  const discovery = { issuer: 'https://idp.example.com', tokenEndpoint: 'https://idp.example.com/token' };

  test('discovery: the device flow needs a device endpoint (a configuration error), and the grant types it lists', () => {
    expect(discoveryOutcome(oidcProfile(), discovery, 12)).toMatchObject({
      verdict: 'FAIL',
      exitCode: ExitCode.config,
      fix: 'set "flow": "browser" in the "oidc" section',
    });
    const device = { ...discovery, deviceAuthorizationEndpoint: 'https://idp.example.com/device' };
    expect(discoveryOutcome(oidcProfile(), { ...device, grantTypes: ['refresh_token'] }, 12)).toMatchObject({
      verdict: 'WARN',
      finding: 'https://idp.example.com does not list the grant types urn:ietf:params:oauth:grant-type:device_code',
    });
    expect(discoveryOutcome(oidcProfile(), device, 12)).toMatchObject({
      verdict: 'OK',
      finding: 'https://idp.example.com answered discovery in 12 ms: token endpoint https://idp.example.com/token, device flow offered',
    });
  });

  test('discovery: the browser flow needs PKCE S256; no token endpoint is a configuration error', () => {
    expect(discoveryOutcome(oidcProfile({ flow: 'browser' }), { ...discovery, codeChallengeMethods: ['plain'] }, 1).finding).toBe(
      'https://idp.example.com does not list PKCE S256',
    );
    expect(discoveryOutcome(oidcProfile(), { issuer: 'https://idp.example.com' }, 1)).toMatchObject({
      verdict: 'FAIL',
      exitCode: ExitCode.config,
    });
  });

  const token = (lifetimeSeconds: number, leftMs: number) => ({
    entry: { key: KEY, version: 'token', secret: 'https://idp.example.com', fetchedAt: NOW, expiresAt: NOW + leftMs },
    claims: { sub: 'gina', aud: ['https://gateway.example.com'], iat: 1_000, exp: 1_000 + lifetimeSeconds },
  });

  test("a token that lives less than Claude Code's TTL twice plus the slack: WARN naming the TTL that fits", () => {
    const { entry, claims } = token(120, 100_000);
    const outcome = accessTokenOutcome(context({}, { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' } }), oidcProfile(), entry, claims);
    expect(outcome.verdict).toBe('WARN');
    // Below (120 s - 10 s of slack) / 2 = 55 s: at 55000 the margin is the token's whole life.
    expect(outcome.fix).toBe(`set CLAUDE_CODE_API_KEY_HELPER_TTL_MS to at most 54000 in Claude Code's settings "env"`);
    const advised = (lifetimeSeconds: number) => {
      const { entry: e, claims: c } = token(lifetimeSeconds, 10_000);
      const fix = accessTokenOutcome(context({}, { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' } }), oidcProfile(), e, c).fix ?? '';
      return /at most (\d+)/.exec(fix)?.[1] ?? 'none';
    };
    // The advice taken is OK, and one second more is not: for even, odd and fractional halves.
    for (const lifetime of [120, 61, 60, 300]) {
      const ttl = Number(advised(lifetime));
      const verdictAt = (ms: number) =>
        accessTokenOutcome(
          context({}, { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(ms) } }),
          oidcProfile(),
          token(lifetime, 10_000).entry,
          token(lifetime, 10_000).claims,
        ).verdict;
      expect([lifetime, verdictAt(ttl)]).toEqual([lifetime, 'OK']);
      expect([lifetime, verdictAt(ttl + 1000)]).toEqual([lifetime, 'WARN']);
    }
    const fits = accessTokenOutcome(context({}, { env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '50000' } }), oidcProfile(), entry, claims);
    expect(fits).toMatchObject({
      verdict: 'OK',
      finding: `${fingerprint(KEY)} for gina, audience https://gateway.example.com; 100 s left (refreshed from 1m50s before expiry)`,
    });
  });

  test('a token for another audience is a WARN; a live token is kept for the gateway checks, an expired one is not', () => {
    const { entry, claims } = token(3600, HOUR);
    const elsewhere = accessTokenOutcome(context(), oidcProfile({ resource: 'https://other.example.com' }), entry, claims);
    expect(elsewhere).toMatchObject({ verdict: 'WARN', finding: expect.stringMatching(/: not for https:\/\/other\.example\.com$/) });
    const live: DoctorState = {};
    accessTokenOutcome(context(live), oidcProfile(), entry, claims);
    expect(live).toMatchObject({ key: KEY, keyFrom: `the cached access token (${fingerprint(KEY)})` });
    const expired: DoctorState = {};
    const outcome = accessTokenOutcome(context(expired), oidcProfile(), { ...entry, expiresAt: NOW - MINUTE }, claims);
    expect(outcome).toMatchObject({ verdict: 'SKIP', finding: expect.stringContaining('expired 1m ago') });
    expect(expired.key).toBeUndefined();
  });
});

describe('gateway checks', () => {
  test('streaming: three or more events within 20 ms came in one burst (buffered); fewer, or spread out, is fine', () => {
    expect(streamTiming('m', 100, [150, 155, 169]).verdict).toBe('FAIL');
    expect(streamTiming('m', 100, [150, 155, 169]).fix).toContain('proxy_buffering off');
    expect(streamTiming('m', 100, [150, 155, 170])).toMatchObject({
      verdict: 'OK',
      finding: '3 events, first after 50 ms, 20 ms from first to last: arrived incrementally',
      details: { model: 'm', events: 3, firstEventMs: 50, firstToLastMs: 20 },
    });
    expect(streamTiming('m', 100, [150, 151]).verdict).toBe('OK');
    expect(streamTiming('m', 100, []).finding).toBe('the streaming response carried no data: events');
  });

  test('the models listing names at most five, and a page that is not JSON is a WARN', () => {
    const state: DoctorState = {};
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    expect(listedModels(JSON.stringify({ data: ids.map((id) => ({ id })) }), state).finding).toBe(
      'GET /v1/models: 6 models (a, b, c, d, e, …)',
    );
    expect(state.listedModels).toEqual(ids);
    expect(listedModels(JSON.stringify({ data: [{ id: 'a' }] }), {}).finding).toBe('GET /v1/models: 1 model (a)');
    expect(listedModels('<html><body>Sign in</body></html>', {})).toMatchObject({
      verdict: 'WARN',
      finding: 'GET /v1/models answered 200 but not with JSON: Sign in',
    });
  });

  test('a rejected key names it by fingerprint only, with the exit code of a rejected key', () => {
    const state: DoctorState = { key: KEY, keyFrom: 'the store (version v1)' };
    const body = JSON.stringify({ type: 'error', error: { type: 'authentication_error', message: `invalid x-api-key ${KEY}` } });
    const outcome = describeFailure('GET /v1/models', new Response(body, { status: 401 }), body, state);
    expect(outcome).toMatchObject({
      verdict: 'FAIL',
      exitCode: ExitCode.keyRejected,
      details: { status: 401, fingerprint: fingerprint(KEY) },
    });
    expect(outcome.finding).toContain(
      `rejected key ${fingerprint(KEY)} from the store (version v1) (authentication_error: invalid x-api-key`,
    );
    expect(JSON.stringify(outcome)).not.toContain(KEY);
  });

  test('a redirect names where it goes; an HTML 403 is a firewall, its page title quoted', () => {
    const redirect = new Response(null, { status: 307, headers: { location: 'https://login.example.com/' } });
    expect(describeFailure('GET /v1/models', redirect, '', {})).toMatchObject({
      verdict: 'FAIL',
      details: { status: 307, location: 'https://login.example.com/' },
    });
    const page = '<html><title> Access denied </title></html>';
    const waf = new Response(page, { status: 403, headers: { 'content-type': 'text/html' } });
    const outcome: CheckOutcome = describeFailure('GET /v1/models', waf, page, {});
    expect(outcome.finding).toMatch(/^GET \/v1\/models: 403 with an HTML page \("Access denied"\): a web application firewall/);
    expect(describeFailure('x', new Response('{}', { status: 429 }), '{}', {}).verdict).toBe('WARN');
  });

  test('plain HTTP to another machine: FAIL, and the key is withheld from every later check', () => {
    const state: DoctorState = {};
    const outcome = checkGatewayUrl(context(state, { gateway: 'http://gateway.example.com/' }));
    expect(outcome).toMatchObject({ verdict: 'FAIL', details: { keySent: false } });
    expect(state.keyWithheld?.why).toBe(
      'http://gateway.example.com is plain HTTP to another machine, so keybroker does not send your key there',
    );
    const https: DoctorState = {};
    expect(checkGatewayUrl(context(https, { gateway: 'https://gateway.example.com/v1' }))).toMatchObject({
      verdict: 'OK',
      finding: 'https://gateway.example.com/v1 (from --gateway)',
      details: { keySent: true },
    });
    expect(https.keyWithheld).toBeUndefined();
  });
});
