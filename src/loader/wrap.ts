/**
 * The function a CommonJS bundle runs in when keybroker runs it itself (the program in the single
 * executable, each chunk): the build makes each V8 code cache from this same text.
 */
export function wrapCommonJs(code: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${code}\n})`;
}

/**
 * V8 flags for the run that trains the program's code cache (bin/train-code-cache.ts). Without them
 * two trainings of the same program write different bytes (hash seeds, and bytecode flushed when
 * the GC happens to run); with `--predictable` they write the same (measured: 4 of 4), so a release
 * stays reproducible. It does not enter V8's flag hash: the executable, run without it, accepts the
 * cache (test/e2e/warm-path.test.ts); `--hash-seed` and `--no-flush-bytecode` do, and are refused.
 */
export const TRAINING_FLAGS = ['--predictable'];
