// The layout is the architecture: folders import only the folders below them (.dependency-cruiser.cjs
// says which), nothing imports in a circle, and each folder's main file says what the part may use.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const config = path.join(root, '.dependency-cruiser.cjs');
const { mayUse } = createRequire(import.meta.url)(config) as { mayUse: Record<string, string[]> };

interface Violation {
  from: string;
  to: string;
  rule: { name: string };
}

/** dependency-cruiser over `folders` of `cwd`, with the project's rules: the violations it reports. */
function violations(cwd: string, folders: string[]): Violation[] {
  const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');
  const existing = folders.filter((folder) => fs.existsSync(path.join(cwd, folder)));
  const text = execFileSync(depcruise, [...existing, '--config', config, '--output-type', 'json'], {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const result = JSON.parse(text) as { summary: { violations: Violation[]; totalCruised: number } };
  expect(result.summary.totalCruised).toBeGreaterThan(0);
  return result.summary.violations;
}

const short = (folder: string) => folder.replace(/^src\//, '');

describe('architecture', () => {
  it('has no import circle and no import from a lower folder into a higher one', () => {
    const found = violations(root, ['src', 'providers', 'bin']).map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
    expect(found).toEqual([]);
  });

  it('the check fails on a circle, on an upward import (type-only too) and on a file outside the folders', () => {
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-layers-'));
    try {
      const write = (file: string, text: string) => {
        fs.mkdirSync(path.dirname(path.join(tree, file)), { recursive: true });
        fs.writeFileSync(path.join(tree, file), text);
      };
      write('src/kernel/errors.ts', "import type { Command } from '../cli/command.ts';\nexport type E = Command;\n");
      write('src/cli/command.ts', 'export interface Command { name: string }\n');
      write('src/gateway/a.ts', "import { b } from './b.ts';\nexport const a = () => b;\n");
      write('src/gateway/b.ts', "import { a } from './a.ts';\nexport const b = () => a;\n");
      write('src/loose.ts', "import { a } from './gateway/a.ts';\nexport const c = a;\n");
      const names = violations(tree, ['src']).map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`);
      expect(names).toContain('layer-src-kernel: src/kernel/errors.ts -> src/cli/command.ts');
      expect(names).toContain('no-circular: src/gateway/a.ts -> src/gateway/b.ts');
      expect(names).toContain('no-unknown-folder: src/loose.ts -> src/gateway/a.ts');
    } finally {
      fs.rmSync(tree, { recursive: true, force: true });
    }
  });

  it('keeps at most two files directly in src/', () => {
    const loose = fs.readdirSync(path.join(root, 'src')).filter((name) => name.endsWith('.ts'));
    expect(loose.length).toBeLessThanOrEqual(2);
  });

  it('every folder has a main file whose opening line says what the part is and what it may use, as the rules do', () => {
    const openings = new Map<string, string[]>();
    for (const folder of Object.keys(mayUse)) {
      for (const name of fs.readdirSync(path.join(root, folder), { recursive: true }) as string[]) {
        if (!name.endsWith('.ts')) continue;
        const first = fs.readFileSync(path.join(root, folder, name), 'utf8').split('\n', 1)[0]!;
        const match = /^\/\/ Part (\S+)\/: .+\. May use: (.+)\.$/.exec(first);
        if (match) openings.set(match[1]!, [...(openings.get(match[1]!) ?? []), match[2]!]);
      }
    }
    for (const [folder, allowed] of Object.entries(mayUse)) {
      const said = openings.get(folder);
      expect(said, `${folder} has no file opening with "// Part ${folder}/: … May use: ….`).toHaveLength(1);
      expect(said![0], folder).toBe(allowed.length ? allowed.map(short).join(', ') : 'nothing of ours');
    }
  });
});
