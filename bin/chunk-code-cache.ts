// Writes each chunk's V8 code cache next to it (CHUNK.cache), made by running the chunk's top
// level: a cold `get` then skips most of its SDK's compiling. Run by the Node the executable is
// made of (bin/build.ts for dist/keybroker, release/build.ts for the host target: a code cache only
// helps the Node that made it), with TRAINING_FLAGS (src/loader/wrap.ts), from the bundle's folder
// with paths relative to it: the same chunk then makes the same bytes wherever it is built.
// Usage: node --predictable bin/chunk-code-cache.ts chunks/provider-aws.cjs … (in the bundle's folder)
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { runChunk } from '../src/loader/chunks.ts';
import { wrapCommonJs } from '../src/loader/wrap.ts';
import * as errors from '../src/kernel/errors.ts';

for (const chunk of process.argv.slice(2)) {
  // Named and run as if in a fixed folder (release/build.ts passes paths relative to the bundle):
  // the cache records names and paths, and must not depend on the folder the release is built in.
  const script = new vm.Script(wrapCommonJs(fs.readFileSync(chunk, 'utf8')), { filename: path.basename(chunk) });
  runChunk(script, path.join(path.sep, 'keybroker', 'chunks', path.basename(chunk)), errors);
  fs.writeFileSync(chunk.replace(/\.cjs$/, '.cache'), script.createCachedData());
}
