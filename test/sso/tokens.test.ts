// An `oidc` profile's tokens in-process: what `get` serves after a refresh (and what it refuses
// after the identity provider refused), where the refresh token is kept, and what `login` says.
// The identity provider is a fake SsoLibrary; the clock and the cache are injected.
import { describe, expect, it } from 'vitest';
import { cacheAccount, refreshTokenAccount } from '../../src/cache/account.ts';
import type { CacheBackendKind } from '../../src/cache/cache-store.ts';
import { parseEntry, serializeEntry } from '../../src/cache/entry.ts';
import type { OidcConfig, Profile } from '../../src/config/config.ts';
import { CacheUnavailable, NotAuthenticated, UnusableKey } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import type { SsoContext, SsoLibrary, TokenClaims, TokenSet } from '../../src/sso/library.ts';
import { isOidcProfile, loginCommandFor, readRefreshToken, ssoLogin, tokenSource, type SsoDeps } from '../../src/sso/tokens.ts';
import { memoryCache, testProfile } from '../broker/fakes.ts';

const ISSUER = 'https://idp.test';
const NOW = Date.parse('2026-11-27T09:00:00Z');
const HOUR = 3_600_000;

function ssoProfile(oidc: Partial<OidcConfig> = {}): Profile & { oidc: OidcConfig } {
  return { ...testProfile(), name: 'sso', secret: ISSUER, oidc: { issuer: ISSUER, clientId: 'keybroker-test', ...oidc } };
}

/** A fake identity provider: each call is recorded; what it answers is set per test. */
function fakeIdp() {
  const idp = {
    refreshes: [] as { oidc: OidcConfig; context: SsoContext; refreshToken: string }[],
    exchanges: [] as string[],
    logins: [] as string[],
    answer: { accessToken: 'eyJ.access-1.sig', refreshToken: 'rt-1', expiresAt: NOW + HOUR } as TokenSet,
    exchanged: { accessToken: 'eyJ.gateway-1.sig', expiresAt: NOW + HOUR / 2 } as TokenSet,
    refuse: undefined as Error | undefined,
    claims: { aud: [], jti: 'jti-1' } as TokenClaims | undefined,
    library: undefined as unknown as SsoLibrary,
  };
  idp.library = {
    discover: async () => ({ issuer: ISSUER }),
    deviceLogin: async () => {
      idp.logins.push('device');
      return { ...idp.answer };
    },
    browserLogin: async () => {
      idp.logins.push('browser');
      return { ...idp.answer };
    },
    refresh: async (oidc, context, refreshToken) => {
      idp.refreshes.push({ oidc, context, refreshToken });
      if (idp.refuse) throw idp.refuse;
      return { ...idp.answer };
    },
    exchange: async (_oidc, _context, accessToken) => {
      idp.exchanges.push(accessToken);
      return { ...idp.exchanged };
    },
    readClaims: () => idp.claims,
  };
  return idp;
}

/** The deps of one run: a memory cache that says it is `kind`, the fake IdP, and what was warned, logged and said. */
function run(profile = ssoProfile(), kind: CacheBackendKind = 'keychain') {
  const idp = fakeIdp();
  const cache = Object.assign(memoryCache(), { kind });
  const out = { warnings: [] as string[], debug: [] as string[], said: [] as string[], libraryLoads: 0 };
  const deps: SsoDeps = {
    profile,
    cache,
    now: () => NOW,
    loadLibrary: async () => {
      out.libraryLoads++;
      return idp.library;
    },
    warn: (line) => void out.warnings.push(line),
    debug: (message) => void out.debug.push(message),
  };
  const io = { say: (line: string) => void out.said.push(line), openBrowser: async () => {} };
  return { idp, cache, out, deps, io, profile };
}

const storedToken = (refreshToken: string, storedAt = NOW - HOUR) => JSON.stringify({ v: 1, refreshToken, storedAt });

describe('which profiles are oidc, and the login command messages name', () => {
  it('a profile with an "oidc" block is one, a store profile is not', () => {
    expect(isOidcProfile(ssoProfile())).toBe(true);
    expect(isOidcProfile(testProfile())).toBe(false);
    expect(loginCommandFor(ssoProfile())).toBe('keybroker login --profile sso');
  });
});

describe('the stored refresh token', () => {
  it('is read from the refresh-token account next to the access token', async () => {
    const { deps, cache, profile } = run();
    expect(await readRefreshToken(deps)).toBeUndefined();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-0', 123));
    expect(await readRefreshToken(deps)).toEqual({ v: 1, refreshToken: 'rt-0', storedAt: 123 });
    expect(await readRefreshToken({ ...deps, profile: ssoProfile({ clientId: 'other-client' }) })).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"v":1,'],
    ['another version', JSON.stringify({ v: 2, refreshToken: 'rt-0', storedAt: 1 })],
    ['an empty token', JSON.stringify({ v: 1, refreshToken: '', storedAt: 1 })],
    ['a token that is not text', JSON.stringify({ v: 1, refreshToken: 7, storedAt: 1 })],
    ['no time it was stored', JSON.stringify({ v: 1, refreshToken: 'rt-0' })],
  ])('%s is as absent (a sign-in is asked for, nothing is sent to the IdP)', async (_what, text) => {
    const { deps, cache, profile, idp } = run();
    cache.data.set(refreshTokenAccount(profile), text);
    expect(await readRefreshToken(deps)).toBeUndefined();
    await expect(tokenSource(deps)()).rejects.toThrow(NotAuthenticated);
    expect(idp.refreshes).toEqual([]);
  });
});

describe('the token source of get', () => {
  it('not signed in: NotAuthenticated that names the issuer and the login command, and the IdP library is not even loaded', async () => {
    const { deps, out } = run();
    const error = await tokenSource(deps)().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotAuthenticated);
    expect((error as NotAuthenticated).line()).toBe(
      'profile "sso" is not signed in to https://idp.test: run keybroker login --profile sso',
    );
    expect(out.libraryLoads).toBe(0);
  });

  it('refreshes with the stored token and serves the access token as an entry: its jti, its issuer, fetched now, its exp', async () => {
    const { deps, cache, profile, idp, out } = run(ssoProfile(), 'keychain');
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    const entry = await tokenSource(deps)();
    expect(entry).toEqual({ key: 'eyJ.access-1.sig', version: 'jti-1', secret: ISSUER, fetchedAt: NOW, expiresAt: NOW + HOUR });
    expect(idp.refreshes).toHaveLength(1);
    expect(idp.refreshes[0]!.refreshToken).toBe('rt-1');
    expect(idp.refreshes[0]!.oidc).toBe(profile.oidc);
    expect(idp.refreshes[0]!.context).toMatchObject({ profile: 'sso', timeoutMs: profile.timeoutMs });
    expect(out.debug).toContain('refreshing the access token at https://idp.test');
    expect(out.warnings).toEqual([]);
  });

  it('an opaque token (no claims) is versioned by its fingerprint; a token with no exp has no expiry', async () => {
    const { deps, cache, profile, idp } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.claims = undefined;
    idp.answer = { accessToken: 'opaque-access-token' };
    const entry = await tokenSource(deps)();
    expect(entry).toEqual({ key: 'opaque-access-token', version: fingerprint('opaque-access-token'), secret: ISSUER, fetchedAt: NOW });
    expect('expiresAt' in entry).toBe(false);
    idp.claims = { aud: [] };
    expect((await tokenSource(deps)()).version).toBe(fingerprint('opaque-access-token'));
  });

  it('an access token Claude Code cannot send is UnusableKey, naming the issuer and the fix', async () => {
    const { deps, cache, profile, idp } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.answer = { accessToken: 'eyJ.access 1.sig', refreshToken: 'rt-1' };
    const error = await tokenSource(deps)().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UnusableKey);
    expect((error as UnusableKey).line()).toBe(
      "the access token from https://idp.test is not something Claude Code can send: it contains a space at position 11: ask your admin to check the identity provider's token format",
    );
  });

  it('a rotated refresh token is kept (stored now) before the access token is served', async () => {
    const { deps, cache, profile, idp, out } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-old'));
    idp.answer = { accessToken: 'eyJ.access-2.sig', refreshToken: 'rt-new' };
    await tokenSource(deps)();
    expect(JSON.parse(cache.data.get(refreshTokenAccount(profile))!)).toEqual({ v: 1, refreshToken: 'rt-new', storedAt: NOW });
    expect(out.debug).toContain('stored the rotated refresh token');
  });

  it('the same or no refresh token in the answer: the stored one is left as it was', async () => {
    for (const refreshToken of ['rt-1', undefined]) {
      const { deps, cache, profile, idp, out } = run();
      const before = storedToken('rt-1');
      cache.data.set(refreshTokenAccount(profile), before);
      idp.answer = { accessToken: 'eyJ.access-2.sig', ...(refreshToken ? { refreshToken } : {}) };
      await tokenSource(deps)();
      expect(cache.data.get(refreshTokenAccount(profile))).toBe(before);
      expect(out.debug).not.toContain('stored the rotated refresh token');
    }
  });

  it('a rotated refresh token with nowhere to keep it: served, with one warning saying when to sign in again', async () => {
    const { deps, cache, profile, idp, out } = run(ssoProfile(), 'none');
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-old'));
    idp.answer = { accessToken: 'eyJ.access-2.sig', refreshToken: 'rt-new' };
    expect((await tokenSource(deps)()).key).toBe('eyJ.access-2.sig');
    expect(out.warnings).toEqual([
      'keybroker: the renewed sign-in could not be kept (there is no keychain to keep the sign-in of profile "sso" in: unlock or start the keychain (Secret Service, macOS Keychain, Credential Manager), or set "cache": {"fallback": "file"} to allow a private file); after this token expires, run keybroker login --profile sso',
    ]);
    expect(out.debug).not.toContain('stored the rotated refresh token');
  });

  it('a rotated refresh token whose write fails unexpectedly fails the call (no silent loss of a spent token)', async () => {
    const { deps, cache, profile, idp, out } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-old'));
    idp.answer = { accessToken: 'eyJ.access-2.sig', refreshToken: 'rt-new' };
    cache.write = async () => {
      throw new Error('disk on fire');
    };
    await expect(tokenSource(deps)()).rejects.toThrow('disk on fire');
    expect(out.warnings).toEqual([]);
  });

  it('the IdP refused the sign-in: the cached access token is removed and the NotAuthenticated goes to the caller', async () => {
    const { deps, cache, profile, idp, out } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    cache.data.set(cacheAccount(profile), serializeEntry({ key: 'eyJ.still-fresh.sig', version: 'j', secret: ISSUER, fetchedAt: NOW }));
    idp.refuse = new NotAuthenticated('the sign-in ended (invalid_grant)', 'run keybroker login --profile sso');
    await expect(tokenSource(deps)()).rejects.toBe(idp.refuse);
    expect(cache.data.has(cacheAccount(profile))).toBe(false);
    expect(out.debug).toContain('the sign-in was refused: removed the cached access token');
  });

  it('the IdP refused and there was no cached access token: nothing is said to have been removed', async () => {
    const { deps, cache, profile, idp, out } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.refuse = new NotAuthenticated('the sign-in ended (invalid_grant)', 'run keybroker login --profile sso');
    await expect(tokenSource(deps)()).rejects.toBe(idp.refuse);
    expect(out.debug).not.toContain('the sign-in was refused: removed the cached access token');
  });

  it('an IdP that is down (not a refusal) leaves the cached access token for the broker to serve', async () => {
    const { deps, cache, profile, idp } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    cache.data.set(cacheAccount(profile), 'cached');
    idp.refuse = new Error('ECONNREFUSED');
    await expect(tokenSource(deps)()).rejects.toThrow('ECONNREFUSED');
    expect(cache.data.get(cacheAccount(profile))).toBe('cached');
  });

  it('refused, and the cached access token cannot be removed: the refusal is still what the caller gets', async () => {
    const { deps, cache, profile, idp, out } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.refuse = new NotAuthenticated('the sign-in ended (invalid_grant)', 'run keybroker login --profile sso');
    cache.remove = async () => {
      throw new CacheUnavailable('the keychain is locked', 'unlock it');
    };
    await expect(tokenSource(deps)()).rejects.toBe(idp.refuse);
    expect(out.debug).toContain('the sign-in was refused; the cached access token could not be removed: the keychain is locked');
    cache.remove = async () => {
      throw new Error('a bug');
    };
    await expect(tokenSource(deps)()).rejects.toThrow('a bug');
  });
});

describe('the token exchange ("exchange" section)', () => {
  const exchangeProfile = () => ssoProfile({ exchange: { tokenEndpoint: 'https://idp.test/token', audience: 'llm-gateway' } });

  it('serves the gateway token traded for the access token, never longer than the sign-in it came from', async () => {
    const { deps, cache, profile, idp } = run(exchangeProfile());
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.exchanged = { accessToken: 'eyJ.gateway-1.sig', expiresAt: NOW + 2 * HOUR };
    expect(await tokenSource(deps)()).toMatchObject({ key: 'eyJ.gateway-1.sig', expiresAt: NOW + HOUR });
    expect(idp.exchanges).toEqual(['eyJ.access-1.sig']);
    idp.exchanged = { accessToken: 'eyJ.gateway-2.sig' };
    expect(await tokenSource(deps)()).toMatchObject({ key: 'eyJ.gateway-2.sig', expiresAt: NOW + HOUR });
    idp.exchanged = { accessToken: 'eyJ.gateway-3.sig', expiresAt: NOW + HOUR - 1 };
    expect(await tokenSource(deps)()).toMatchObject({ key: 'eyJ.gateway-3.sig', expiresAt: NOW + HOUR - 1 });
    idp.exchanged = { accessToken: 'eyJ.gateway-4.sig', expiresAt: NOW + HOUR };
    expect(await tokenSource(deps)()).toMatchObject({ key: 'eyJ.gateway-4.sig', expiresAt: NOW + HOUR });
  });

  it('a sign-in with no exp leaves the gateway token its own expiry (or none)', async () => {
    const { deps, cache, profile, idp } = run(exchangeProfile());
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    idp.answer = { accessToken: 'eyJ.access-1.sig' };
    idp.exchanged = { accessToken: 'eyJ.gateway-1.sig', expiresAt: NOW + 2 * HOUR };
    expect((await tokenSource(deps)()).expiresAt).toBe(NOW + 2 * HOUR);
    idp.exchanged = { accessToken: 'eyJ.gateway-2.sig' };
    expect('expiresAt' in (await tokenSource(deps)())).toBe(false);
  });

  it('without an "exchange" section the IdP token itself is served', async () => {
    const { deps, cache, profile, idp } = run();
    cache.data.set(refreshTokenAccount(profile), storedToken('rt-1'));
    expect((await tokenSource(deps)()).key).toBe('eyJ.access-1.sig');
    expect(idp.exchanges).toEqual([]);
  });
});

describe('keybroker login', () => {
  it('device flow by default: both tokens cached, and one line that says which token and where the refresh token is', async () => {
    const { deps, cache, profile, idp, out, io } = run(ssoProfile(), 'keychain');
    idp.answer = { accessToken: 'eyJ.access-1.sig', refreshToken: 'rt-1', expiresAt: NOW + HOUR + 400 };
    const entry = await ssoLogin(deps, io);
    expect(idp.logins).toEqual(['device']);
    expect(entry).toEqual({ key: 'eyJ.access-1.sig', version: 'jti-1', secret: ISSUER, fetchedAt: NOW, expiresAt: NOW + HOUR + 400 });
    expect(parseEntry(cache.data.get(cacheAccount(profile))!)).toEqual(entry);
    expect(JSON.parse(cache.data.get(refreshTokenAccount(profile))!)).toEqual({ v: 1, refreshToken: 'rt-1', storedAt: NOW });
    expect(out.said).toEqual([
      'signing in to https://idp.test (device code flow) for profile "sso"',
      `signed in: access token ${fingerprint('eyJ.access-1.sig')}, valid for 3600 s; the refresh token is kept in the keychain`,
    ]);
    expect(out.warnings).toEqual([]);
  });

  it('the browser flow when the profile or the command asks for it; a file cache is named as such', async () => {
    const viaProfile = run(ssoProfile({ flow: 'browser' }), 'file');
    await ssoLogin(viaProfile.deps, viaProfile.io);
    expect(viaProfile.idp.logins).toEqual(['browser']);
    expect(viaProfile.out.said[0]).toBe('signing in to https://idp.test (browser flow) for profile "sso"');
    expect(viaProfile.out.said[1]).toMatch(/; the refresh token is kept in the private file cache$/);
    const viaCommand = run(ssoProfile({ flow: 'device' }));
    await ssoLogin(viaCommand.deps, viaCommand.io, 'browser');
    expect(viaCommand.idp.logins).toEqual(['browser']);
  });

  it('no refresh token issued: says why (offline_access) and that login is needed again; nothing is kept as one', async () => {
    const { deps, cache, profile, idp, out, io } = run();
    idp.answer = { accessToken: 'eyJ.access-1.sig' };
    await ssoLogin(deps, io);
    expect(cache.data.has(refreshTokenAccount(profile))).toBe(false);
    expect(out.said.slice(1)).toEqual([
      'https://idp.test issued no refresh token (is the "offline_access" scope allowed for this client?): get works until this token expires, then run login again',
      `signed in: access token ${fingerprint('eyJ.access-1.sig')}`,
    ]);
  });

  it('no refresh token from a Claude apps gateway: says it issues none, not to ask about offline_access', async () => {
    const { deps, idp, out, io } = run();
    idp.answer = { accessToken: 'eyJ.access-1.sig', fromAppsGateway: true };
    await ssoLogin(deps, io);
    expect(out.said[1]).toBe(
      'https://idp.test issued no refresh token (a Claude apps gateway issues none): get works until this token expires, then run login again',
    );
  });

  it('nowhere to keep the sign-in: refused before the IdP is asked anything, with the fix', async () => {
    const { deps, idp, out, io } = run(ssoProfile(), 'none');
    const error = await ssoLogin(deps, io).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CacheUnavailable);
    expect((error as CacheUnavailable).line()).toBe(
      'there is no keychain to keep the sign-in of profile "sso" in: unlock or start the keychain (Secret Service, macOS Keychain, Credential Manager), or set "cache": {"fallback": "file"} to allow a private file',
    );
    expect(out.libraryLoads).toBe(0);
    expect(idp.logins).toEqual([]);
  });

  it('an `auto` cache that gives up on the keychain at the write (no file fallback): the sign-in is refused, not lost silently', async () => {
    const { deps, cache, io } = run();
    const write = cache.write;
    cache.write = async (account, data) => {
      cache.kind = 'none';
      await write(account, data);
    };
    await expect(ssoLogin(deps, io)).rejects.toThrow(/there is no keychain to keep the sign-in of profile "sso" in/);
  });

  it('the access token cannot be cached: signed in all the same, with a warning naming the fix', async () => {
    const { deps, cache, profile, out, io } = run();
    const write = cache.write;
    cache.write = async (account, data) => {
      if (account === cacheAccount(profile)) throw new CacheUnavailable('the keychain is locked', 'unlock it');
      await write(account, data);
    };
    expect((await ssoLogin(deps, io)).key).toBe('eyJ.access-1.sig');
    expect(out.warnings).toEqual(['keybroker: the access token was not cached: the keychain is locked: unlock it']);
    expect(cache.data.has(refreshTokenAccount(profile))).toBe(true);
    cache.write = async (account, data) => {
      if (account === cacheAccount(profile)) throw new Error('a bug');
      await write(account, data);
    };
    await expect(ssoLogin(deps, io)).rejects.toThrow('a bug');
  });

  it('with an "exchange" section the gateway token is what is cached and announced', async () => {
    const { deps, cache, profile, io, out } = run(
      ssoProfile({ exchange: { tokenEndpoint: 'https://idp.test/token', audience: 'llm-gateway' } }),
    );
    const entry = await ssoLogin(deps, io);
    expect(entry).toMatchObject({ key: 'eyJ.gateway-1.sig', expiresAt: NOW + HOUR / 2 });
    expect(parseEntry(cache.data.get(cacheAccount(profile))!)?.key).toBe('eyJ.gateway-1.sig');
    expect(out.said[1]).toContain(`access token ${fingerprint('eyJ.gateway-1.sig')}, valid for 1800 s`);
  });
});
