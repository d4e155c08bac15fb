// Run by the pinned Node of the host target (release/build.ts): writes each chunk's V8 code cache
// next to it, as bin/build.ts does for dist/keybroker. A code cache only helps the Node that made
// it, so the release makes one only for the target this machine is.
import fs from 'node:fs';
import vm from 'node:vm';
import { runChunk, wrapChunk } from '../src/loader/chunks.ts';
import * as errors from '../src/kernel/errors.ts';

for (const chunk of process.argv.slice(2)) {
  const script = new vm.Script(wrapChunk(fs.readFileSync(chunk, 'utf8')), { filename: chunk });
  runChunk(script, chunk, errors);
  fs.writeFileSync(chunk.replace(/\.cjs$/, '.cache'), script.createCachedData());
}
