// The single executable's entry point (pkg.config.json's `main`). It runs the program, bin/keybroker.ts
// bundled as the asset keybroker.cjs, with the V8 code cache bin/build.ts made after running a warm
// `get` with it (bin/train-code-cache.ts). Node's own code cache (`useCodeCache`) holds only what
// compiling the top level compiles, so every function a warm `get` calls was compiled again on every
// run: measured 16.6 -> 11.4 ms of CPU for the program's part of a warm get.
import sea from 'node:sea';
import vm from 'node:vm';
import { wrapCommonJs } from '../src/loader/wrap.ts';

const debug =
  process.env['KEYBROKER_DEBUG'] === '1' || process.argv.includes('--verbose') || process.argv.includes('-v')
    ? (line: string) => process.stderr.write(`keybroker: debug: ${line}\n`)
    : () => {};
let cachedData: Buffer | undefined;
try {
  cachedData = Buffer.from(sea.getRawAsset('keybroker.cache'));
} catch {
  // A build that made none (a release for another platform: a code cache only fits the Node that made it).
}
// The program's own `import('node:…')` (what loads only when a command needs it) resolves as in any
// main script: through Node's default loader.
const program = new vm.Script(wrapCommonJs(sea.getAsset('keybroker.cjs', 'utf8')), {
  filename: __filename,
  importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  ...(cachedData ? { cachedData } : {}),
});
if (!cachedData) debug('the program runs without a code cache (this build made none): compiled as it runs');
else if (program.cachedDataRejected) debug('the code cache of the program was rejected (made by another Node?): compiled as it runs');
else debug(`the program runs with the code cache its build made after a warm get (${Math.round(cachedData.length / 1024)} KiB)`);
(program.runInThisContext() as (...args: unknown[]) => void)(exports, require, module, __filename, __dirname);
