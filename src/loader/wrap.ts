/**
 * The function a CommonJS bundle runs in when keybroker runs it itself (the program in the single
 * executable, each chunk): the build makes each V8 code cache from this same text.
 */
export function wrapCommonJs(code: string): string {
  return `(function (exports, require, module, __filename, __dirname) {${code}\n})`;
}
