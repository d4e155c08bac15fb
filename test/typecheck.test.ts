// The strict type check is part of the suite (CI runs only `npm test`): a type error, or syntax that
// Node's type stripping refuses (tsconfig's erasableSyntaxOnly: the demo and the build run src/ under
// node as it is), fails the run here rather than at run time.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

it('the whole tree type-checks under tsconfig.json (strict, erasable syntax only)', () => {
  let output = '';
  try {
    execFileSync(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', root], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  expect(output).toBe('');
});
