// Issue 12: an `oidc` profile is validated like every other section, and is one kind or the other.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, storeOf } from '../../src/config/config.ts';
import { cacheAccount, refreshTokenAccount } from '../../src/cache/account.ts';
import { ConfigError } from '../../src/kernel/errors.ts';
import { effectiveConfig } from '../../src/config/view.ts';

let dir: string;
let user: string;
const env = (): NodeJS.ProcessEnv => ({ KEYBROKER_MACHINE_CONFIG: path.join(dir, 'none.json'), KEYBROKER_CONFIG: user });
const oidc = { issuer: 'https://login.example.com', clientId: 'keybroker', resource: 'https://llm.example.com' };
const load = (profile: unknown) => {
  fs.writeFileSync(user, JSON.stringify({ profiles: { default: profile } }));
  return loadConfig({ env: env() });
};
const failure = (profile: unknown) => {
  try {
    load(profile);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).line();
  }
  throw new Error('no error');
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-oidc-config-'));
  user = path.join(dir, 'user.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('oidc profiles', () => {
  it('loads an oidc profile with no store and no secret; its tokens are named by the issuer', () => {
    const { profile } = load({ oidc: { ...oidc, flow: 'browser', scopes: ['openid', 'offline_access'] } });
    expect(profile.oidc).toEqual({ ...oidc, flow: 'browser', scopes: ['openid', 'offline_access'] });
    expect(profile.store).toBeUndefined();
    expect(profile.secret).toBe(oidc.issuer);
    expect(() => storeOf(profile)).toThrow(/serves SSO tokens from https:\/\/login\.example\.com and has no "store"/);
  });

  it('keybroker config shows the oidc fields and where they came from', () => {
    const rows = effectiveConfig(load({ oidc }));
    expect(rows).toContainEqual(expect.objectContaining({ field: 'oidc.issuer', value: oidc.issuer, source: user }));
    expect(rows).toContainEqual(expect.objectContaining({ field: 'oidc.resource', value: oidc.resource, source: user }));
    expect(rows.filter((row) => row.field.startsWith('store.'))).toEqual([]);
  });

  it('a profile has store or oidc, not both, and not neither', () => {
    expect(failure({ store: { type: 'aws' }, secret: 's', oidc })).toMatch(/has both "store" and "oidc": keep one/);
    expect(failure({ cache: { backend: 'file' } })).toMatch(/field "store" is required.*or "oidc"/);
    expect(failure({ oidc, secret: 'claude-code/keys/{user}' })).toMatch(/field "secret" is for a "store" profile/);
  });

  it('validates every field and refuses unknown ones', () => {
    expect(failure({ oidc: { ...oidc, issuer: 'not a url' } })).toMatch(/field "profiles.default.oidc.issuer" must be the issuer URL/);
    expect(failure({ oidc: { ...oidc, clientId: '' } })).toMatch(/oidc.clientId" must not be empty/);
    expect(failure({ oidc: { ...oidc, flow: 'implicit' } })).toMatch(/oidc.flow" must be "device" or "browser"/);
    expect(failure({ oidc: { ...oidc, scopes: ['openid offline_access'] } })).toMatch(/scope names without spaces/);
    expect(failure({ oidc: { ...oidc, audience: 'api://llm' } })).toMatch(/both "audience" and "resource"/);
    expect(failure({ oidc: { ...oidc, clientSecret: 'x' } })).toMatch(/unknown field "clientSecret" in profiles.default.oidc/);
    expect(failure({ oidc: { ...oidc, exchange: { tokenEndpoint: 'https://gw/token' } } })).toMatch(/oidc.exchange.audience" is required/);
    expect(failure({ oidc: { ...oidc, redirectPort: 70000 } })).toMatch(/redirectPort" must be a port number/);
  });

  it('keeps the access token and the refresh token under accounts that change with the oidc section', () => {
    const first = load({ oidc }).profile;
    const second = load({ oidc: { ...oidc, clientId: 'other' } }).profile;
    expect(cacheAccount(first)).not.toBe(cacheAccount(second));
    expect(refreshTokenAccount(first)).toBe(`${cacheAccount(first)}:refresh`);
  });
});
