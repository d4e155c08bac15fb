// A warm `get` parses no store SDK, and a cold one only its own store's. Observed from outside:
// the bundle the binary embeds runs under node with a preload that records every chunk compiled.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { storeTypes } from '../../providers/index.ts';
import { harnesses } from '../providers/harnesses.ts';
import { runBinary } from '../support/binary.ts';

const bundle = path.resolve(import.meta.dirname, '../../dist/keybroker.cjs');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-lazy-'));
const preload = path.join(dir, 'record-chunks.cjs');
fs.writeFileSync(
  preload,
  `const vm = require('node:vm'); const fs = require('node:fs');
   const Original = vm.Script;
   vm.Script = function (code, options) {
     if (options && options.filename) fs.appendFileSync(process.env.CHUNK_LOG, require('node:path').basename(options.filename) + '\\n');
     return new Original(code, options);
   };`,
);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

it('keeps every SDK out of the bundle that every run parses', () => {
  const text = fs.readFileSync(bundle, 'utf8');
  for (const marker of [
    'GetSecretValueCommand',
    'SecretClient',
    'SecretManagerServiceClient',
    'node-vault',
    '@smithy/',
    '@azure/',
    'google-gax',
  ]) {
    expect(text).not.toContain(marker);
  }
});

describe.each(storeTypes.filter((type) => harnesses[type]))('the %s SDK', (type) => {
  it("is parsed by a cold get only, and no other store's SDK ever is", async () => {
    const server = await harnesses[type]!.start();
    try {
      await server.seed(server.developerSecret, 'sk-test-lazy');
      const home = fs.mkdtempSync(path.join(dir, `${type}-`));
      const config = path.join(home, 'config.json');
      fs.writeFileSync(
        config,
        JSON.stringify({
          profiles: { default: { store: server.storeConfig(server.port), secret: server.developerSecret, cache: { backend: 'file' } } },
        }),
      );
      const log = path.join(home, 'chunks.log');
      const env = {
        ...server.developerEnv,
        HOME: home,
        KEYBROKER_CONFIG: config,
        KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
        KEYBROKER_CACHE_DIR: path.join(home, 'cache'),
        NODE_OPTIONS: `--require ${preload}`,
        CHUNK_LOG: log,
      };
      const chunks = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);

      const cold = await runBinary([bundle, 'get'], { env, command: process.execPath });
      expect(cold.stderr).toBe('');
      expect(cold.stdout).toBe('sk-test-lazy');
      expect(chunks()).toEqual([`provider-${type}.cjs`]);

      fs.rmSync(log);
      const warm = await runBinary([bundle, 'get'], { env, command: process.execPath });
      expect(warm.stdout).toBe('sk-test-lazy');
      expect(chunks()).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe('the OIDC libraries (openid-client, jose) of an oidc profile', () => {
  it('stay out of the bundle; a login and a refresh parse the sso chunk, a warm get parses none', async () => {
    const text = fs.readFileSync(bundle, 'utf8');
    for (const marker of ['oauth4webapi', 'pollDeviceAuthorizationGrant', 'JWSSignatureVerificationFailed'])
      expect(text).not.toContain(marker);
    const { startTestOp } = await import('../fakes/oidc-op.ts');
    const { deviceLogin, ssoConfig } = await import('../support/sso.ts');
    const op = await startTestOp({ accessTokenTtl: 120 });
    try {
      const home = fs.mkdtempSync(path.join(dir, 'sso-'));
      const config = path.join(home, 'config.json');
      fs.writeFileSync(config, JSON.stringify(ssoConfig(op)));
      const log = path.join(home, 'chunks.log');
      const env = {
        PATH: process.env['PATH'],
        HOME: home,
        KEYBROKER_CONFIG: config,
        KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
        KEYBROKER_CACHE_DIR: path.join(home, 'cache'),
        CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '10000',
        NODE_OPTIONS: `--require ${preload}`,
        CHUNK_LOG: log,
      };
      const chunks = () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : []);
      // The login through the bundle under node, as the binary would run it.
      const login = await deviceLogin(op, env, 'alice', [], [process.execPath, bundle]);
      expect(login.code, login.stderr).toBe(0);
      expect(chunks()).toEqual(['sso.cjs']);

      fs.rmSync(log);
      const warm = await runBinary([bundle, 'get'], { env, command: process.execPath });
      expect(warm.code, warm.stderr).toBe(0);
      expect(warm.stdout.split('.')).toHaveLength(3);
      expect(chunks()).toEqual([]);

      const refreshed = await runBinary([bundle, 'get', '--recheck'], { env, command: process.execPath });
      expect(refreshed.code, refreshed.stderr).toBe(0);
      expect(refreshed.stdout).not.toBe(warm.stdout);
      expect(chunks()).toEqual(['sso.cjs']);
    } finally {
      await op.stop();
    }
  });
});
