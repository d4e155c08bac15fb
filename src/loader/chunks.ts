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
import { openPrivateFile } from '../kernel/private-file.ts';
import { removeStaleTemps, writeFileAtomic } from '../kernel/temp-files.ts';
import * as errors from '../kernel/errors.ts';
import { wrapCommonJs } from './wrap.ts';

/** Set by the esbuild build (bin/build.ts); absent when the TypeScript source runs under vitest. */
declare const __KEYBROKER_BUNDLE__: { keyringAsset: string; keyringHash: string } | undefined;

export type KeyringBinding = typeof import('@napi-rs/keyring');

function bundle() {
  return typeof __KEYBROKER_BUNDLE__ === 'undefined' ? undefined : __KEYBROKER_BUNDLE__;
}

export async function loadProviderModule(type: StoreType, debug: (message: string) => void = () => {}): Promise<ProviderModule> {
  if (!bundle()) {
    const source = `../../providers/${type}.ts`;
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
  const addon = verifiedAddon(built.keyringAsset, built.keyringHash, env);
  try {
    process.dlopen(module, addon.path);
  } finally {
    addon.close();
  }
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
  const wrapper = new vm.Script(wrapCommonJs(code), { filename: file, ...(cachedData ? { cachedData } : {}) });
  if (!cachedData) debug(`loading ${name} without a code cache`);
  else if (wrapper.cachedDataRejected) debug(`the code cache of ${name} was rejected (built by another Node?); compiling it`);
  else debug(`loading ${name} with its code cache`);
  return runChunk(wrapper, file, errors);
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
 * A native addon cannot be loaded from memory: it is written to the per-user cache (a 0700
 * folder of this user; the name carries its hash, the write is an atomic rename) and loaded
 * from there. What is loaded is checked on every load, byte for byte against the copy built into
 * this executable, on the open descriptor, and on Linux that very descriptor is what dlopen opens
 * (/proc/self/fd/N): a file planted or replaced there, by anyone, is written over, never run.
 */
function verifiedAddon(asset: string, hash: string, env: NodeJS.ProcessEnv): { path: string; close(): void } {
  const sea = seaModule();
  if (!sea) return { path: path.join(path.dirname(__filename), asset), close: () => {} };
  const dir = addonsDir(env);
  const problem = makePrivateDir(path.dirname(dir)) ?? makePrivateDir(dir);
  if (problem) throw new Error(`the keychain addon cannot be kept in ${dir}: ${problem}`);
  // The asset is a view of the executable's own bytes, not a copy.
  const built = Buffer.from(sea.getRawAsset(asset) as ArrayBuffer);
  const target = path.join(dir, `${path.basename(asset, '.node')}-${hash}.node`);
  let fd = openIfIdentical(target, built);
  if (fd === undefined) {
    // Whatever is there (another user's file, one we cannot read) goes: the folder is ours.
    fs.rmSync(target, { force: true, recursive: true });
    removeStaleTemps(dir, isAddonFile);
    writeFileAtomic(target, built, 0o500);
    fd = openIfIdentical(target, built);
    if (fd === undefined) throw new Error(`the keychain addon at ${target} changed while it was written`);
  }
  const opened = fd;
  return {
    // Without /proc (some sandboxes) the path is loaded right after the check, as on macOS and Windows.
    path: process.platform === 'linux' && fs.existsSync(`/proc/self/fd/${opened}`) ? `/proc/self/fd/${opened}` : target,
    close: () => fs.closeSync(opened),
  };
}

/** The folder the keychain addon is extracted to (`cache clear` sweeps its unfinished writes). */
export function addonsDir(env: NodeJS.ProcessEnv): string {
  return path.join(userCacheDir(env), 'addons');
}

/** What an extracted addon is named like: `keyring-<hash>.node`. */
export function isAddonFile(name: string): boolean {
  return /^keyring-[0-9a-f]+\.node$/.test(name);
}

/**
 * An open descriptor of `file` when it is a regular file of this user, others cannot write it, and
 * its bytes are `expected`; undefined for anything else, a file that cannot be opened included
 * (EACCES: another user's 0700 file), so that the caller writes the built-in copy over it.
 */
function openIfIdentical(file: string, expected: Uint8Array): number | undefined {
  let opened: ReturnType<typeof openPrivateFile>;
  try {
    opened = openPrivateFile(file);
  } catch {
    return undefined;
  }
  if (!opened) return undefined;
  const { fd, stat } = opened;
  // Compared in slices through one small buffer: a 3 MB buffer costs more in page faults than the comparison.
  const slice = Buffer.allocUnsafe(Math.min(256 * 1024, expected.length || 1));
  const want = Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength);
  let same = stat.size === expected.length;
  for (let at = 0; same && at < expected.length; ) {
    const count = fs.readSync(fd, slice, 0, Math.min(slice.length, expected.length - at), at);
    same = count > 0 && slice.subarray(0, count).equals(want.subarray(at, at + count));
    at += count;
  }
  if (same) return fd;
  fs.closeSync(fd);
  return undefined;
}
