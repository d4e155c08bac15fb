// Builds dist/keybroker once per test run: end-to-end tests run the binary users run.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function setup(): void {
  if (process.env['KEYBROKER_SKIP_BUILD'] === '1') return;
  const root = path.resolve(import.meta.dirname, '../..');
  execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
}
