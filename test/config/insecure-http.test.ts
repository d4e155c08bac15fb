// A credential never crosses the network in the clear: a Vault address, gateway or key API given
// as plain http:// to another host is refused when the configuration is read (unless the profile
// says "allowInsecureHttp": true), and the gateway's master key is never read from another
// credential's variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { effectiveConfig } from '../../src/config/view.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import { openKeyIssuer } from '../../src/gateway/issuers.ts';
import { ConfigError } from '../../src/kernel/errors.ts';
import { isLoopbackHost, isPlainHttpToAnotherHost } from '../../src/kernel/transport.ts';
import { cleanEnv, runBinary } from '../support/binary.ts';

let dir: string;
let user: string;
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  KEYBROKER_MACHINE_CONFIG: path.join(dir, 'machine.json'),
  KEYBROKER_CONFIG: user,
  ...extra,
});
const writeProfile = (profile: Record<string, unknown>) =>
  fs.writeFileSync(user, JSON.stringify({ profiles: { default: { secret: 'claude-code/keys/{user}', ...profile } } }));
const vault = (address: string) => ({ type: 'vault', address });
const litellm = (url: string, masterKeyEnv?: string) => ({ type: 'litellm' as const, url, ...(masterKeyEnv ? { masterKeyEnv } : {}) });

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-insecure-'));
  user = path.join(dir, 'config.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function configFailure(): ConfigError {
  try {
    loadConfig({ env: env() });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected the configuration to be refused');
}

describe('loopback is the only plain-HTTP destination', () => {
  it('tells this machine from another', () => {
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '[::1]', 'vault.localhost'])
      expect([host, isLoopbackHost(host)]).toEqual([host, true]);
    for (const host of ['vault.example.com', '10.0.0.5', '127.0.0.1.nip.io', '[::ffff:7f00:1]', '0.0.0.0'])
      expect([host, isLoopbackHost(host)]).toEqual([host, false]);
    expect(isPlainHttpToAnotherHost('https://vault.example.com')).toBe(false);
    expect(isPlainHttpToAnotherHost('http://127.0.0.1:8200')).toBe(false);
    expect(isPlainHttpToAnotherHost('http://vault.example.com:8200')).toBe(true);
  });
});

describe('plain http:// to another host is refused at config time', () => {
  it('a Vault address: the Vault token would travel in the clear', () => {
    writeProfile({ store: vault('http://vault.example.com:8200') });
    const error = configFailure();
    expect(error.message).toContain(user);
    expect(error.message).toMatch(/field "store\.address" is plain http:\/\/ to vault\.example\.com:8200, another machine/);
    expect(error.fix).toMatch(/https:\/\/.*"allowInsecureHttp": true/);
  });

  it("a keyIssuer.url: the gateway's master key would travel in the clear", () => {
    writeProfile({ store: { type: 'aws', region: 'us-east-1' }, keyIssuer: litellm('http://litellm.internal:4000') });
    expect(configFailure().message).toMatch(/field "keyIssuer\.url" is plain http:\/\/ to litellm\.internal:4000.*master key/);
  });

  it("a gateway or an AWS endpoint: the developer's key would travel in the clear", () => {
    writeProfile({ store: { type: 'aws', region: 'us-east-1' }, gateway: 'http://llm.example.com' });
    expect(configFailure().message).toMatch(/field "gateway" is plain http:\/\//);
    writeProfile({ store: { type: 'aws', region: 'us-east-1', endpoint: 'http://10.1.2.3:4566' } });
    expect(configFailure().message).toMatch(/field "store\.endpoint" is plain http:\/\/ to 10\.1\.2\.3:4566/);
  });

  it('loopback (emulators, local proxies) and https are accepted', () => {
    writeProfile({
      store: vault('http://127.0.0.1:8200'),
      gateway: 'http://localhost:4000',
      keyIssuer: litellm('https://litellm.example.com'),
    });
    expect(loadConfig({ env: env() }).profile.store).toEqual(vault('http://127.0.0.1:8200'));
  });

  it('"allowInsecureHttp": true in the profile lets it through, said in the profile', () => {
    writeProfile({
      store: vault('http://vault.example.com:8200'),
      keyIssuer: litellm('http://litellm.internal:4000'),
      allowInsecureHttp: true,
    });
    const loaded = loadConfig({ env: env() });
    const { profile } = loaded;
    expect(profile.allowInsecureHttp).toBe(true);
    // `keybroker config` shows it, with the file that set it.
    expect(effectiveConfig(loaded)).toContainEqual(expect.objectContaining({ field: 'allowInsecureHttp', value: true, source: user }));
    expect(profile.keyIssuer?.url).toBe('http://litellm.internal:4000');
  });

  it('VAULT_ADDR (when the store names no address) is refused before any request', async () => {
    writeProfile({ store: { type: 'vault' } });
    const { profile } = loadConfig({ env: env() });
    const opening = openProvider(profile, {
      env: { VAULT_ADDR: 'http://vault.example.com:8200', VAULT_TOKEN: 'hvs.test-token' },
      debug: () => {},
    });
    await expect(opening).rejects.toThrow(ConfigError);
    await expect(opening).rejects.toThrow(/VAULT_ADDR is plain http:\/\/ to vault\.example\.com:8200/);
    writeProfile({ store: { type: 'vault' }, allowInsecureHttp: true });
    await expect(
      openProvider(loadConfig({ env: env() }).profile, { env: { VAULT_ADDR: 'http://vault.example.com:8200' }, debug: () => {} }),
    ).resolves.toBeDefined();
  });

  it('the key API never sends the master key to a plain-HTTP host, even when handed such a config directly', () => {
    let calls = 0;
    const spy = (async () => {
      calls++;
      return new Response('{}');
    }) as typeof fetch;
    expect(() =>
      openKeyIssuer(litellm('http://litellm.internal:4000'), {
        env: { LITELLM_MASTER_KEY: 'sk-test-master' },
        timeoutMs: 1_000,
        fetch: spy,
      }),
    ).toThrow(/plain http:\/\/ to another machine/);
    expect(calls).toBe(0);
    expect(() => openKeyIssuer(litellm('http://127.0.0.1:4000'), { env: {}, timeoutMs: 1_000, fetch: spy })).not.toThrow();
    expect(() =>
      openKeyIssuer(litellm('http://litellm.internal:4000'), { env: {}, timeoutMs: 1_000, fetch: spy, allowInsecureHttp: true }),
    ).not.toThrow();
  });
});

describe('keyIssuer.masterKeyEnv never names another credential', () => {
  it.each([
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'VAULT_TOKEN',
    'GOOGLE_APPLICATION_CREDENTIALS',
    'AZURE_CLIENT_SECRET',
    'ANTHROPIC_API_KEY',
    'aws_secret_access_key',
  ])('%s is refused', (name) => {
    writeProfile({ store: { type: 'aws', region: 'us-east-1' }, keyIssuer: litellm('https://litellm.example.com', name) });
    const error = configFailure();
    expect(error.message).toMatch(/field "profiles\.default\.keyIssuer\.masterKeyEnv" names another credential's variable/);
  });

  it('a variable of its own is accepted', () => {
    writeProfile({
      store: { type: 'aws', region: 'us-east-1' },
      keyIssuer: litellm('https://litellm.example.com', 'CORP_LITELLM_MASTER_KEY'),
    });
    expect(loadConfig({ env: env() }).profile.keyIssuer?.masterKeyEnv).toBe('CORP_LITELLM_MASTER_KEY');
  });
});

describe('through the binary', () => {
  it('get refuses a plain-HTTP Vault address with a configuration error (exit 3) and nothing on stdout', async () => {
    writeProfile({ store: vault('http://vault.example.invalid:8200'), cache: { backend: 'none' } });
    const result = await runBinary(['get'], { env: cleanEnv({ KEYBROKER_CONFIG: user, VAULT_TOKEN: 'hvs.test-token' }, dir) });
    expect(result.stdout).toBe('');
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/"store\.address" is plain http:\/\/ to vault\.example\.invalid:8200/);
    expect(result.stderr).not.toContain('hvs.test-token');
  });
});
