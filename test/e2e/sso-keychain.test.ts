// Issue 12: an `oidc` profile's refresh token in the real OS keychain, through the built binary: a
// real Secret Service (gnome-keyring on a private D-Bus) and a real OP (oidc-provider). `secret-tool`
// is the independent client that finds the item; no file holds the token; a later get refreshes
// with it; the OP's rotation replaces it; logout removes it. No token is ever printed here: the
// checks compare, they do not show.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeJwt } from 'jose';
import { startTestOp, type TestOp } from '../fakes/oidc-op.ts';
import { runBinary } from '../support/binary.ts';
import { startSecretService, type SecretService } from '../support/secret-service.ts';
import { makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { deviceLogin, ssoConfig } from '../support/sso.ts';
import { loadConfig } from '../../src/config/config.ts';
import { cacheAccount, refreshTokenAccount } from '../../src/cache/account.ts';

let op: TestOp;
let keyring: SecretService;
let home: TestHome;

beforeAll(async () => {
  [op, keyring] = await Promise.all([startTestOp({ accessTokenTtl: 60 }), startSecretService()]);
  home = makeTestHome(ssoConfig(op, {}, { cache: { backend: 'keychain' } }), keyring.home);
});
afterAll(async () => {
  await Promise.all([op?.stop(), keyring?.stop()]);
});

/** Files under `dir` whose bytes contain `text` (names only). */
function filesContaining(dir: string, text: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => {
    const file = path.join(dir, name);
    return fs.statSync(file).isFile() && fs.readFileSync(file).includes(text);
  });
}

it('login keeps the refresh token in the Secret Service (secret-tool finds it, no file holds it); get refreshes with it; rotation replaces it; logout removes it', async () => {
  // Claude Code's default TTL (300 s): its margin, 2 × 300 s + 10 s, is longer than a 60 s token, so every get refreshes.
  const env = { ...home.env({ CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' }), ...keyring.env };
  const profile = loadConfig({ env }).profile;
  const item = { service: 'keybroker', username: refreshTokenAccount(profile) };
  const accessItem = { service: 'keybroker', username: cacheAccount(profile) };
  /** The refresh token secret-tool reads from keybroker's item; undefined when there is none. */
  const keptRefreshToken = async () => {
    const text = await keyring.lookup(item);
    return text === undefined ? undefined : (JSON.parse(text) as { refreshToken: string }).refreshToken;
  };
  const refreshes = () => op.tokens.filter((request) => request.grantType === 'refresh_token');

  const login = await deviceLogin(op, env, 'lena');
  expect(login.code, login.stderr).toBe(0);
  expect(login.stderr).toContain('the refresh token is kept in the keychain');
  const first = await keptRefreshToken();
  expect(typeof first === 'string' && first.length >= 32).toBe(true);
  expect(await keyring.accounts('keybroker')).toEqual(expect.arrayContaining([item.username, accessItem.username]));
  // gnome-keyring's own file is encrypted: nothing under HOME (cache, state, runtime folders) holds it in the clear.
  expect(filesContaining(home.dir, first!)).toEqual([]);
  expect(fs.existsSync(path.join(home.dir, '.cache/keybroker/keys'))).toBe(false);
  expect(login.stderr.includes(first!)).toBe(false);

  // A later get refreshes with the keychain's token; the OP rotates it and keybroker keeps the new one there.
  const before = refreshes().length;
  const get = await runBinary(['get'], { env });
  expect(get.code, get.stderr).toBe(0);
  expect(decodeJwt(get.stdout)).toMatchObject({ sub: 'lena', aud: op.resource });
  const firstRefresh = refreshes().slice(before);
  expect(firstRefresh.map((request) => request.status)).toEqual([200]);
  expect(firstRefresh[0]!.refreshToken === first!.slice(0, 16)).toBe(true);
  const second = await keptRefreshToken();
  expect(typeof second === 'string' && second !== first).toBe(true);
  expect(filesContaining(home.dir, second!)).toEqual([]);

  // The next refresh presents the rotated token, never the spent one.
  const again = await runBinary(['get'], { env });
  expect(again.code, again.stderr).toBe(0);
  const secondRefresh = refreshes().slice(before + 1);
  expect(secondRefresh.map((request) => request.status)).toEqual([200]);
  expect(secondRefresh[0]!.refreshToken === second!.slice(0, 16)).toBe(true);
  expect((await keptRefreshToken()) !== second).toBe(true);
  for (const output of [get.stderr, again.stderr]) expect(output.includes(first!) || output.includes(second!)).toBe(false);

  // logout removes both items: secret-tool finds nothing of the profile's.
  const logout = await runBinary(['logout'], { env });
  expect(logout.code, logout.stderr).toBe(0);
  expect(logout.stdout).toMatch(
    /removed the sign-in \(refresh token\) from the keychain; removed the cached access token from the keychain/,
  );
  expect((await keyring.lookup(item)) === undefined).toBe(true);
  expect((await keyring.lookup(accessItem)) === undefined).toBe(true);
  expect((await keyring.accounts('keybroker')).filter((account) => account === item.username || account === accessItem.username)).toEqual(
    [],
  );
  const signedOut = await runBinary(['get'], { env });
  expect({ code: signedOut.code, stdout: signedOut.stdout }).toEqual({ code: 4, stdout: '' });
  expect(signedOut.stderr).toContain('run keybroker login --profile default');
});
