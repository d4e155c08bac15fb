// Builds dist/keybroker: esbuild bundles the CLI (no SDK inside) and one chunk per provider,
// then Node's single-executable machinery embeds them, as pkg.config.json says, into a copy
// of the Node binary that runs the build (the pinned one, package.json's optionalDependencies). Run with `npm run build:binary`.
// `--out DIR --keyring FILE --bundle-only` (release/build.ts): bundles for another platform's addon
// into DIR, no code cache, no executable; release/build.ts makes those with that platform's Node.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';
import { storeTypes } from '../providers/index.ts';
import { TRAINING_FLAGS } from '../src/loader/wrap.ts';

const root = path.resolve(import.meta.dirname, '..');
const flags = parseArgs({ options: { out: { type: 'string' }, keyring: { type: 'string' }, 'bundle-only': { type: 'boolean' } } }).values;
const dist = path.resolve(root, flags.out ?? 'dist');
const require = createRequire(import.meta.url);
const seaConfig = JSON.parse(fs.readFileSync(path.join(root, 'pkg.config.json'), 'utf8')) as {
  main: string;
  output: string;
  assets: Record<string, string>;
};
// pkg.config.json's paths are under dist/; --out moves them.
const inDist = (file: string): string => path.relative(root, path.join(dist, path.relative('dist', file)));
seaConfig.main = inDist(seaConfig.main);
seaConfig.output = inDist(seaConfig.output);
for (const [asset, file] of Object.entries(seaConfig.assets)) seaConfig.assets[asset] = inDist(file);
const version = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const started = Date.now();

// Only what this build writes: dist/ also holds other builds' output (dist/release/).
for (const name of [
  'chunks',
  'keybroker',
  'keybroker.exe',
  'boot.cjs',
  'keybroker.cjs',
  'keybroker.cache',
  'keybroker.blob',
  'keyring.node',
  'sea-config.json',
  'node-stripped',
])
  fs.rmSync(path.join(dist, name), { recursive: true, force: true });
fs.mkdirSync(path.join(dist, 'chunks'), { recursive: true });

// The keychain addon for this platform, shipped as an asset and loaded with process.dlopen.
const keyringPackage = `@napi-rs/keyring-${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : process.platform === 'win32' ? '-msvc' : ''}`;
if (flags.keyring) {
  fs.copyFileSync(path.resolve(flags.keyring), path.join(dist, 'keyring.node'));
} else {
  const keyringDir = path.dirname(require.resolve(`${keyringPackage}/package.json`));
  const keyringFile = fs.readdirSync(keyringDir).find((name) => name.endsWith('.node'));
  if (!keyringFile) throw new Error(`no .node file in ${keyringDir}`);
  fs.copyFileSync(path.join(keyringDir, keyringFile), path.join(dist, 'keyring.node'));
}
const keyringHash = createHash('sha256')
  .update(fs.readFileSync(path.join(dist, 'keyring.node')))
  .digest('hex')
  .slice(0, 16);

const common: esbuild.BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: 'none',
  logLevel: 'warning',
  logOverride: { 'unsupported-dynamic-import': 'silent', 'empty-import-meta': 'silent' },
};

// `import fs from 'node:fs'` in a CommonJS bundle becomes __toESM(require('node:fs')) in every
// importing module, each a copy of all the module's properties (~1.5 ms of a warm `get`). These
// builtins become one ES module each instead: required once, no copies.
const ONCE = ['fs', 'path', 'os', 'vm'];
const builtinsOnce: esbuild.Plugin = {
  name: 'builtins-once',
  setup(build) {
    const filter = new RegExp(`^node:(${ONCE.join('|')})$`);
    build.onResolve({ filter }, (args) => ({ path: args.path.slice(5), namespace: 'builtin-once' }));
    build.onLoad({ filter: /.*/, namespace: 'builtin-once' }, (args) => {
      const builtin = require(args.path) as Record<string, unknown>;
      // Plain values only: reading a getter (fs.promises) would load what Node loads lazily.
      const names = Object.keys(builtin).filter(
        (name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default' && 'value' in Object.getOwnPropertyDescriptor(builtin, name)!,
      );
      return {
        contents: `const m = require(${JSON.stringify(args.path)});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`,
        loader: 'js',
      };
    });
  },
};

// The CLI: everything but the SDKs. `@napi-rs/keyring` is only imported when running from source.
// It is the asset keybroker.cjs; the executable's main is bin/boot.ts, which runs it with its code cache.
const programAsset = seaConfig.assets['keybroker.cjs'];
if (!programAsset) throw new Error('pkg.config.json lists no asset keybroker.cjs: bin/boot.ts would have no program to run');
const programFile = path.join(root, programAsset);
await esbuild.build({
  ...common,
  entryPoints: [path.join(root, 'bin/keybroker.ts')],
  outfile: programFile,
  external: ['@napi-rs/keyring'],
  plugins: [builtinsOnce],
  define: {
    __KEYBROKER_BUNDLE__: JSON.stringify({ keyringAsset: 'keyring.node', keyringHash }),
    __KEYBROKER_VERSION__: JSON.stringify(version),
  },
});

await esbuild.build({ ...common, entryPoints: [path.join(root, 'bin/boot.ts')], outfile: path.join(root, seaConfig.main) });

// One chunk per provider. Its imports of src/kernel/errors.ts resolve at run time to the CLI's own
// module, so `instanceof KeybrokerError` holds across the boundary. Matched by the resolved file,
// not by how an import spells it, and a chunk that never imports it fails the build: a moved
// errors module must not silently give each chunk its own KeybrokerError class.
const errorsModule = path.join(root, 'src', 'kernel', 'errors.ts');
// The stores' chunks, and the chunks that are not stores (loaded by src/loader/chunks.ts loadChunk).
const chunks = [
  ...storeTypes.map((type) => ({ name: `provider-${type}`, source: `providers/${type}.ts`, purpose: `open ${type} stores` })),
  { name: 'sso', source: 'src/sso/oidc-lib.ts', purpose: 'sign in or refresh SSO tokens (oidc profiles)' },
];
for (const chunk of chunks) {
  if (!seaConfig.assets[`${chunk.name}.cjs`])
    throw new Error(`pkg.config.json lists no asset ${chunk.name}.cjs: the binary could not ${chunk.purpose}`);
  const entry = path.join(root, chunk.source);
  const outfile = path.join(dist, 'chunks', `${chunk.name}.cjs`);
  let sharesErrors = false;
  const hostModules: esbuild.Plugin = {
    name: 'host-modules',
    setup(build) {
      build.onResolve({ filter: /^\.\.?\// }, (args) => {
        if (path.resolve(args.resolveDir, args.path) !== errorsModule) return undefined;
        sharesErrors = true;
        return { path: 'keybroker:errors', external: true };
      });
    },
  };
  await esbuild.build({ ...common, entryPoints: [entry], outfile, plugins: [hostModules] });
  if (!sharesErrors)
    throw new Error(
      `${chunk.source} does not import ${path.relative(root, errorsModule)}: its errors would not be the CLI's KeybrokerError`,
    );
}
if (!flags['bundle-only']) {
  // Each chunk's cache, made as the release makes it (bin/chunk-code-cache.ts), then the program's.
  const chunkFiles = chunks.map((chunk) => path.join('chunks', `${chunk.name}.cjs`));
  execFileSync(process.execPath, [...TRAINING_FLAGS, path.join(root, 'bin', 'chunk-code-cache.ts'), ...chunkFiles], {
    cwd: dist,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  trainProgramCache();
}
if (flags['bundle-only']) {
  console.log(`bundled into ${path.relative(root, dist)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(0);
}

/**
 * The program's V8 code cache, made by running a warm `get` with it (bin/train-code-cache.ts) in a
 * child of this Node: holds every function the hot path calls, not only the top level.
 */
function trainProgramCache(): void {
  const printed = execFileSync(
    process.execPath,
    [...TRAINING_FLAGS, path.join(root, 'bin', 'train-code-cache.ts'), programFile, programFile.replace(/\.cjs$/, '.cache')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (printed !== 'sk-test-train-code-cacheeyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0cmFpbiJ9.sig-test-train')
    throw new Error(
      `bin/train-code-cache.ts printed ${printed.length} bytes, not its two cached test credentials: a warm get it trains on failed`,
    );
}

// The single executable: blob from pkg.config.json, injected into a copy of this Node binary.
// pkg.config.json's assets plus each chunk's code cache (next to it, same name, .cache), absolute paths.
const assets: Record<string, string> = {};
for (const [asset, file] of Object.entries(seaConfig.assets)) {
  if (!fs.existsSync(path.join(root, file)))
    throw new Error(`pkg.config.json names asset ${asset} at ${file}, which the build did not produce`);
  assets[asset] = path.join(root, file);
  const cache = path.join(root, file.replace(/\.cjs$/, '.cache'));
  if (asset.endsWith('.cjs') && fs.existsSync(cache)) assets[asset.replace(/\.cjs$/, '.cache')] = cache;
}
const builtConfig = path.join(dist, 'sea-config.json');
const binary = path.join(dist, process.platform === 'win32' ? 'keybroker.exe' : 'keybroker');
const seaSettings = { ...seaConfig, main: path.join(root, seaConfig.main), assets };
if (process.platform === 'win32') {
  // PE: blob, then postject (as the release build does for Windows).
  fs.writeFileSync(builtConfig, JSON.stringify({ ...seaSettings, output: path.join(root, seaConfig.output) }, null, 2));
  execFileSync(process.execPath, ['--experimental-sea-config', builtConfig], { cwd: root, stdio: 'inherit' });
  fs.copyFileSync(process.execPath, binary);
  const postject = path.join(path.dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
  execFileSync(
    process.execPath,
    [
      postject,
      binary,
      'NODE_SEA_BLOB',
      path.join(root, seaConfig.output),
      '--sentinel-fuse',
      'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
} else {
  // ELF and Mach-O: Node's own builder makes the blob and injects it in one step, into a copy of
  // this Node (on Linux stripped first: 94 -> 86 MiB; strip is optional).
  let executable = process.execPath;
  if (process.platform === 'linux') {
    const stripped = path.join(dist, 'node-stripped');
    fs.copyFileSync(process.execPath, stripped);
    try {
      execFileSync('strip', [stripped], { stdio: 'ignore' });
      executable = stripped;
    } catch {
      // no strip on this machine: a larger binary, same behaviour
    }
  }
  fs.writeFileSync(builtConfig, JSON.stringify({ ...seaSettings, executable, output: binary }, null, 2));
  execFileSync(process.execPath, ['--build-sea', builtConfig], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.rmSync(path.join(dist, 'node-stripped'), { force: true });
}
fs.chmodSync(binary, 0o755);
if (process.platform === 'darwin') execFileSync('codesign', ['--sign', '-', binary]);
console.log(`built ${path.relative(root, binary)} (node ${process.version}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
