// Run by bin/build.ts, with the Node the executable is made from: runs the bundled program through a
// warm `get` of a key and one of an SSO token (each fresh in the file cache, in a throwaway HOME) and
// writes the V8 code cache of everything that ran: the executable starts its hot path compiled
// (bin/boot.ts loads the cache).
// Usage: node bin/train-code-cache.ts dist/keybroker.cjs dist/keybroker.cache (prints the cached keys)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { cacheSlot } from '../src/cache/account.ts';
import { osLoginName } from '../src/kernel/login-name.ts';
import { serializeEntry } from '../src/cache/entry.ts';
import { fileCache } from '../src/cache/file.ts';
import { loadConfig } from '../src/config/config.ts';
import { keyFilesDir } from '../src/kernel/paths.ts';
import { wrapCommonJs } from '../src/loader/wrap.ts';

const [bundleArg, outArg] = process.argv.slice(2);
if (!bundleArg || !outArg) throw new Error('usage: node bin/train-code-cache.ts BUNDLE OUT');
const bundle = path.resolve(bundleArg);
const out = path.resolve(outArg);

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-train-'));
process.on('exit', () => fs.rmSync(home, { recursive: true, force: true }));
const env: NodeJS.ProcessEnv = {
  PATH: process.env['PATH'],
  HOME: home,
  XDG_CONFIG_HOME: path.join(home, '.config'),
  XDG_CACHE_HOME: path.join(home, '.cache'),
  XDG_RUNTIME_DIR: path.join(home, 'run'),
  KEYBROKER_CONFIG: path.join(home, 'keybroker.json'),
  KEYBROKER_MACHINE_CONFIG: path.join(home, 'machine-config.json'),
  USER: 'train',
};
fs.mkdirSync(env['XDG_RUNTIME_DIR']!, { mode: 0o700 });
// The store is never asked (the cached key is fresh); a closed loopback port in case it were. The
// SSO profile's access token is cached as a login leaves it (no identity provider is asked either).
const store = { type: 'aws', region: 'us-east-1', endpoint: 'http://127.0.0.1:9' };
const sso = {
  oidc: { issuer: 'https://login.example.invalid', clientId: 'train', resource: 'https://llm.example.invalid' },
  cache: { backend: 'file' },
};
fs.writeFileSync(
  env['KEYBROKER_CONFIG']!,
  JSON.stringify({
    profiles: { default: { store, secret: 'claude-code/keys/{user}', cache: { backend: 'file', refreshAfter: '1h' } }, sso },
  }),
);
const cached = { default: 'sk-test-train-code-cache', sso: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0cmFpbiJ9.sig-test-train' };
for (const [name, key] of Object.entries(cached)) {
  const profile = loadConfig({ env: { ...env, KEYBROKER_PROFILE: name } }).profile;
  // The name the program itself resolves {user} to (the passwd entry's, else USER).
  const slot = cacheSlot(profile, () => osLoginName(env));
  await fileCache(keyFilesDir(env)).write(
    slot.account,
    serializeEntry({
      key,
      version: 'v1',
      secret: slot.secret ?? profile.secret,
      fetchedAt: Date.now(),
      ...(name === 'sso' ? { expiresAt: Date.now() + 3_600_000 } : {}),
    }),
  );
}

// The program as the executable runs it: same wrapper text, its argv and environment, once per
// profile kind; the cache holds every function either run compiled.
// A fixed filename: the cache records it, and a release must not depend on the folder it was built in.
const script = new vm.Script(wrapCommonJs(fs.readFileSync(bundle, 'utf8')), {
  filename: 'keybroker.cjs',
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
});
const program = script.runInThisContext() as (...args: unknown[]) => void;
const require = (await import('node:module')).createRequire(bundle);
process.env = env;
const exit = process.exit;
for (const name of Object.keys(cached)) {
  process.argv = [process.execPath, bundle, '--profile', name];
  const code = await new Promise((resolve) => {
    process.exit = ((code?: number) => resolve(code ?? 0)) as typeof process.exit;
    const module = { exports: {} };
    program(module.exports, require, module, bundle, path.dirname(bundle));
  });
  if (code !== 0) {
    process.stderr.write(`train-code-cache: the warm get of the ${name} profile exited ${String(code)}: no code cache written\n`);
    exit(1);
  }
}
process.exit = exit;
fs.writeFileSync(out, script.createCachedData());
