// `npm run demo` on the built binary: every step passes, and no key is ever printed in full.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

it('runs every demo step to the end and shows keys by fingerprint only', () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const result = spawnSync(process.execPath, ['bin/demo.ts'], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KEYBROKER_DEBUG: undefined } });
  const output = result.stdout + result.stderr;
  expect(result.status, output).toBe(0);
  expect(output).toContain('from cache');
  expect(output.match(/\(the expected key\)/g)).toHaveLength(4);
  expect(output).toMatch(/^Done: /m);
  expect(output).not.toContain('sk-test-demo-');
});
