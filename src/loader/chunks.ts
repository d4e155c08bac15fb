// Part src/loader/: what loads late: each store's SDK chunk, the keychain addon, an opened store. May use: kernel, providers, config.
// Loads what the hot path must not parse up front: each store's SDK (one chunk per provider)
// and the keychain's native addon. In the single executable they travel as SEA assets.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import type { ProviderModule } from '../../providers/provider.ts';
import type { StoreType } from '../../providers/index.ts';
import { makePrivateDir, userCacheDir } from '../kernel/paths.ts';
import * as errors from '../kernel/errors.ts';

/** Set by the esbuild build (bin/build.ts); absent when the TypeScript source runs under vitest. */
declare const __KEYBROKER_BUNDLE__: { keyringAsset: string; keyringHash: string } | undefined;

export type KeyringBinding = typeof import('@napi-rs/keyring');

function bundle() {
  return typeof __KEYBROKER_BUNDLE__ === 'undefined' ? undefined : __KEYBROKER_BUNDLE__;
}

export async function loadProviderModule(type: StoreType, debug: (message: string) => void = () => {}): Promise<ProviderModule> {
  if (!bundle()) {
    const source = '../../providers/' + type + '.ts';
    return (await import(source)) as ProviderModule;
  }
  return loadBundledChunk(`provider-${type}`, debug) as ProviderModule;
}

/**
 * A chunk that is not a store: `sso` (openid-client and jose, src/sso/oidc-lib.ts). The caller
 * types what it gets (the loader sits below the parts that define it).
 */
export async function loadChunk(name: 'sso', debug: (message: string) => void = () => {}): Promise<unknown> {
  if (!bundle()) {
    const source = '../sso/' + 'oidc-lib.ts';
    return await import(source);
  }
  return loadBundledChunk(name, debug);
}

let keyring: KeyringBinding | undefined;
export async function loadKeyring(env: NodeJS.ProcessEnv): Promise<KeyringBinding> {
  if (keyring) return keyring;
  const built = bundle();
  if (!built) {
    keyring = (await import('@napi-rs/keyring')) as unknown as KeyringBinding;
    return keyring;
  }
  const module = { exports: {} as KeyringBinding };
  process.dlopen(module, nativeAddonPath(built.keyringAsset, built.keyringHash, env));
  keyring = module.exports;
  return keyring;
}

function seaModule(): typeof import('node:sea') | undefined {
  const require = createRequire(__filename);
  const sea = require('node:sea') as typeof import('node:sea');
  return sea.isSea() ? sea : undefined;
}

/**
 * Runs a CommonJS chunk: from the SEA's assets, or from dist/chunks next to the bundle. The
 * chunk's `require('keybroker:errors')` is this bundle's own errors module (bin/build.ts).
 */
function loadBundledChunk(name: string, debug: (message: string) => void): unknown {
  const sea = seaModule();
  const file = path.join(path.dirname(__filename), 'chunks', `${name}.cjs`);
  const code = sea ? sea.getAsset(`${name}.cjs`, 'utf8') : fs.readFileSync(file, 'utf8');
  const cachedData = readCodeCache(name, file, sea);
  const wrapper = new vm.Script(wrapChunk(code), { filename: file, ...(cachedData ? { cachedData } : {}) });
  if (!cachedData) debug(`loading ${name} without a code cache`);
  else if (wrapper.cachedDataRejected) debug(`the code cache of ${name} was rejected (built by another Node?); compiling it`);
  else debug(`loading ${name} with its code cache`);
  return runChunk(wrapper, file, errors);
}

/** The function a chunk's CommonJS code runs in; bin/build.ts makes the code cache from the same text. */
export function wrapChunk(code: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${code}\n})`;
}

/** Runs a wrapped chunk; its `require('keybroker:errors')` gets `hostErrors`, anything else a built-in. */
export function runChunk(script: vm.Script, file: string, hostErrors: unknown): unknown {
  const builtins = createRequire(file);
  const hostRequire = (id: string): unknown => (id === 'keybroker:errors' ? hostErrors : builtins(id));
  const module = { exports: {} };
  const compiled = script.runInThisContext() as (...args: unknown[]) => void;
  compiled(module.exports, hostRequire, module, file, path.dirname(file));
  return module.exports;
}

/** The V8 code cache the build made for a chunk (saves ~20 ms of compiling on a cold get), if any. */
function readCodeCache(name: string, file: string, sea: typeof import('node:sea') | undefined): Buffer | undefined {
  try {
    return sea ? Buffer.from(sea.getRawAsset(`${name}.cache`) as ArrayBuffer) : fs.readFileSync(file.replace(/\.cjs$/, '.cache'));
  } catch {
    return undefined;
  }
}

/**
 * A native addon cannot be loaded from memory: write it once to the per-user cache (the name
 * carries its hash, the write is an atomic rename) and dlopen it from there.
 */
function nativeAddonPath(asset: string, hash: string, env: NodeJS.ProcessEnv): string {
  const sea = seaModule();
  if (!sea) return path.join(path.dirname(__filename), asset);
  const dir = path.join(userCacheDir(env), 'addons');
  const target = path.join(dir, `${path.basename(asset, '.node')}-${hash}.node`);
  if (fs.existsSync(target)) return target;
  const problem = makePrivateDir(dir);
  if (problem) throw new Error(`the keychain addon cannot be written: ${problem}`);
  const temp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(temp, new Uint8Array(sea.getRawAsset(asset) as ArrayBuffer), { mode: 0o500 });
  fs.renameSync(temp, target);
  return target;
}
