// The binary holds a credential: nothing from the environment may run code inside it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { runBinary } from '../support/binary.ts';

it('ignores NODE_OPTIONS, so a --require cannot run code inside keybroker', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-hardening-'));
  const marker = path.join(dir, 'preload-ran');
  const preload = path.join(dir, 'preload.cjs');
  fs.writeFileSync(preload, `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran');`);
  const result = await runBinary(['--version'], { env: { PATH: process.env['PATH'], NODE_OPTIONS: `--require ${preload}` } });
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^keybroker \d+\.\d+\.\d+/);
  expect(fs.existsSync(marker)).toBe(false);
  // The same preload does run under plain node: the test would catch the setting going away.
  const { execFileSync } = await import('node:child_process');
  execFileSync(process.execPath, ['-e', '0'], { env: { NODE_OPTIONS: `--require ${preload}` } });
  expect(fs.existsSync(marker)).toBe(true);
  fs.rmSync(dir, { recursive: true, force: true });
});
