// The code caches a release embeds are reproducible: the program's (trained by a warm get) and each
// chunk's, made twice in two different folders with TRAINING_FLAGS, are the same bytes. Without the
// flags V8 writes different bytes on each run (hash seeds, bytecode flushed when the GC runs), and a
// chunk's cache records the path it was given. The binary accepting them: test/e2e/warm-path.test.ts.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { TRAINING_FLAGS } from '../../src/loader/wrap.ts';

const root = path.resolve(import.meta.dirname, '../..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-code-cache-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** Copies the built bundle and a chunk into `folder` and makes their caches as release/build.ts does. */
function caches(folder: string, flags: string[]): { program: Buffer; chunk: Buffer } {
  const bundle = path.join(scratch, folder);
  fs.mkdirSync(path.join(bundle, 'chunks'), { recursive: true });
  fs.copyFileSync(path.join(root, 'dist', 'keybroker.cjs'), path.join(bundle, 'keybroker.cjs'));
  fs.copyFileSync(path.join(root, 'dist', 'chunks', 'provider-vault.cjs'), path.join(bundle, 'chunks', 'provider-vault.cjs'));
  execFileSync(process.execPath, [...flags, path.join(root, 'bin', 'chunk-code-cache.ts'), 'chunks/provider-vault.cjs'], { cwd: bundle });
  const printed = execFileSync(
    process.execPath,
    [...flags, path.join(root, 'bin', 'train-code-cache.ts'), path.join(bundle, 'keybroker.cjs'), path.join(bundle, 'keybroker.cache')],
    { encoding: 'utf8' },
  );
  expect(printed).toContain('sk-test-train-code-cache');
  return {
    program: fs.readFileSync(path.join(bundle, 'keybroker.cache')),
    chunk: fs.readFileSync(path.join(bundle, 'chunks', 'provider-vault.cache')),
  };
}

it('the same bundle trains the same code caches in two folders, and different ones without the flags', () => {
  const first = caches('one', TRAINING_FLAGS);
  const second = caches('another-folder', TRAINING_FLAGS);
  expect(first.program.length).toBeGreaterThan(100_000);
  expect(second.program.equals(first.program)).toBe(true);
  expect(second.chunk.equals(first.chunk)).toBe(true);
  // The check can fail: without the flags, two runs already differ.
  const loose = [caches('loose-1', []), caches('loose-2', [])];
  expect(loose[0]!.program.equals(loose[1]!.program) && loose[0]!.chunk.equals(loose[1]!.chunk)).toBe(false);
});
