// Run by the pinned Node of the host target (release/build.ts): writes each chunk's V8 code cache
// next to it, as bin/build.ts does for dist/keybroker. A code cache only helps the Node that made
// it, so the release makes one only for the target this machine is. Run with TRAINING_FLAGS
// (src/loader/wrap.ts): the same chunk then makes the same bytes.
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
