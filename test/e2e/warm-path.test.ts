// A warm `get` (fresh cached key) loads neither node:crypto nor node:child_process (nor the lock
// module, which needs crypto): each costs milliseconds of the start-up that the bench holds
// against a bare executable. Observed from outside: the bundle the binary embeds, under node,
// with a preload that reports at exit.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runBinary } from '../support/binary.ts';
import { closedPort } from '../support/fault-proxy.ts';
import { awsConfig, makeTestHome } from '../support/e2e-home.ts';
import { cacheSlot } from '../../src/cache/account.ts';
import { osLoginName } from '../../src/kernel/login-name.ts';
import { loadConfig } from '../../src/config/config.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { fileCache } from '../../src/cache/file.ts';

const bundle = path.resolve(import.meta.dirname, '../../dist/keybroker.cjs');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-warm-'));
const preload = path.join(dir, 'report-loads.cjs');
fs.writeFileSync(
  preload,
  `const fs = require('node:fs');
   process.on('exit', () => fs.writeFileSync(process.env.LOAD_REPORT, JSON.stringify({
     crypto: process.moduleLoadList.includes('NativeModule crypto'),
     childProcess: process.moduleLoadList.includes('NativeModule child_process'),
   })));`,
);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function loadsOf(args: string[], env: NodeJS.ProcessEnv) {
  const report = path.join(dir, `report-${Math.random().toString(36).slice(2)}.json`);
  const result = await runBinary([bundle, ...args], {
    env: { ...env, NODE_OPTIONS: `--require ${preload}`, LOAD_REPORT: report },
    command: process.execPath,
  });
  return { result, loads: JSON.parse(fs.readFileSync(report, 'utf8')) as { crypto: boolean; childProcess: boolean } };
}

it('serves a fresh cached key without loading node:crypto or node:child_process', async () => {
  const home = makeTestHome(
    awsConfig(`http://127.0.0.1:${await closedPort()}`, { cache: { backend: 'file', refreshAfter: '1h' } }),
    fs.mkdtempSync(path.join(dir, 'home-')),
  );
  const env = home.env();
  const profile = loadConfig({ env }).profile;
  const slot = cacheSlot(profile, () => osLoginName(env));
  await fileCache(path.join(home.dir, '.cache/keybroker/keys')).write(
    slot.account,
    serializeEntry({ key: 'sk-test-warm-path', version: 'v1', secret: slot.secret!, fetchedAt: Date.now() }),
  );

  const warm = await loadsOf([], env);
  expect(warm.result).toMatchObject({ code: 0, stdout: 'sk-test-warm-path' });
  expect(warm.loads).toEqual({ crypto: false, childProcess: false });

  // The same probe sees crypto once the store must be read (the lock is taken first).
  const cold = await loadsOf([], home.env({ KEYBROKER_CACHE_BACKEND: 'none' }));
  expect(cold.result.code).toBe(7);
  expect(cold.loads.crypto).toBe(true);
});

// Node's own code cache holds only what compiling the program's top level compiles; the build runs
// a warm get with the program and embeds the cache of everything that ran (bin/train-code-cache.ts),
// which bin/boot.ts hands to V8: a cache V8 rejects would silently cost the hot path its compiling.
it('the binary runs its program with the code cache its build made after a warm get, and V8 accepts it', async () => {
  const home = makeTestHome(
    awsConfig(`http://127.0.0.1:${await closedPort()}`, { cache: { backend: 'file', refreshAfter: '1h' } }),
    fs.mkdtempSync(path.join(dir, 'home-')),
  );
  const profile = loadConfig({ env: home.env() }).profile;
  const slot = cacheSlot(profile, () => osLoginName(home.env()));
  await fileCache(path.join(home.dir, '.cache/keybroker/keys')).write(
    slot.account,
    serializeEntry({ key: 'sk-test-warm-path', version: 'v1', secret: slot.secret!, fetchedAt: Date.now() }),
  );
  const result = await runBinary([], { env: home.env({ KEYBROKER_DEBUG: '1' }) });
  expect(result).toMatchObject({ code: 0, stdout: 'sk-test-warm-path' });
  expect(result.stderr.split('\n')[0]).toMatch(
    /^keybroker: debug: the program runs with the code cache its build made after a warm get \(\d+ KiB\)$/,
  );
});
