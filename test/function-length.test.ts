// Code a maintainer can read: no function, method or arrow function in src/ or providers/ spans
// more than 120 lines (nested functions included). TypeScript 7 has no JavaScript compiler API,
// so the spans come from swc's parser (the one dependency-cruiser already uses here).
import fs from 'node:fs';
import path from 'node:path';
import { parseSync } from '@swc/core';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const LIMIT = 120;

/** Functions still longer than LIMIT, each with why it is not split yet. The list may only shrink. */
const ALLOWED: Record<string, string> = {};

interface FunctionSpan {
  file: string;
  line: number;
  name: string;
  lines: number;
}

const FUNCTION_TYPES = new Set([
  'FunctionDeclaration',
  'FunctionExpression',
  'ArrowFunctionExpression',
  'ClassMethod',
  'PrivateMethod',
  'MethodProperty',
  'GetterProperty',
  'SetterProperty',
  'Constructor',
]);

type Node = { type?: string; span?: { start: number; end: number }; [key: string]: unknown };

/** The name a function goes by: its own, its key's, or the variable or property it is assigned to. */
function nameOf(node: Node, outer: string): string {
  const named = (node['identifier'] ?? node['key']) as { value?: unknown } | undefined;
  return typeof named?.value === 'string' ? named.value : outer;
}

/** Every function in one file's source, with its span in lines. */
function functionSpans(file: string, source: string): FunctionSpan[] {
  const program = parseSync(source, { syntax: 'typescript', target: 'es2022', comments: false }) as unknown as Node;
  const bytes = Buffer.from(source, 'utf8');
  // swc's spans are byte positions, 1-based from the file's start (the program ends at its length).
  const base = program.span!.end - bytes.length;
  const lineAt = (position: number) =>
    bytes
      .subarray(0, position - base)
      .toString('utf8')
      .split('\n').length;
  const found: FunctionSpan[] = [];
  const visit = (value: unknown, name: string): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, name);
      return;
    }
    if (!value || typeof value !== 'object') return;
    const node = value as Node;
    let inner = name;
    if (node.type === 'VariableDeclarator' || node.type === 'KeyValueProperty' || node.type === 'ClassProperty') {
      const id = (node['id'] ?? node['key']) as { value?: unknown } | undefined;
      if (typeof id?.value === 'string') inner = id.value;
    }
    if (node.type && FUNCTION_TYPES.has(node.type) && node.span) {
      inner = nameOf(node, name);
      const first = lineAt(node.span.start - 1);
      found.push({ file, line: first, name: inner || '(anonymous)', lines: lineAt(node.span.end - 1) - first + 1 });
    }
    for (const [key, child] of Object.entries(node)) if (key !== 'span') visit(child, inner);
  };
  visit(program, '');
  return found;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(relative);
    return entry.name.endsWith('.ts') ? [relative] : [];
  });
}

describe('function length', () => {
  const spans = ['src', 'providers']
    .flatMap(sourceFiles)
    .flatMap((file) => functionSpans(file, fs.readFileSync(path.join(root, file), 'utf8')));
  const long = spans.filter((span) => span.lines > LIMIT);
  const key = (span: FunctionSpan) => `${span.file} ${span.name}`;

  it(`no function in src/ or providers/ spans more than ${LIMIT} lines, apart from the allow-list`, () => {
    const longest = [...spans].sort((a, b) => b.lines - a.lines).slice(0, 10);
    console.log(`longest functions:\n${longest.map((span) => `  ${span.file}:${span.line} ${span.name} ${span.lines} lines`).join('\n')}`);
    const offenders = long
      .filter((span) => !(key(span) in ALLOWED))
      .map((span) => `${span.file}:${span.line} ${span.name} is ${span.lines} lines`);
    expect(offenders).toEqual([]);
  });

  it('the allow-list holds only functions still over the limit (it can only shrink)', () => {
    const stillLong = new Set(long.map(key));
    const stale = Object.keys(ALLOWED).filter((entry) => !stillLong.has(entry));
    expect(stale, 'split already: remove from ALLOWED').toEqual([]);
  });

  it('measures nested functions, methods and arrows in the span of the function that holds them', () => {
    const body = Array.from({ length: LIMIT }, (_, index) => `  const f${index} = () => ${index};`).join('\n');
    const source = `export function outer() {\n${body}\n  return { m() { return 1; } };\n}\nclass C {\n  method() {\n    return 2;\n  }\n}\nconst arrow = (x: number) =>\n  x + 1;\n`;
    const found = functionSpans('x.ts', source);
    expect(found.find((span) => span.name === 'outer')).toMatchObject({ line: 1, lines: LIMIT + 3 });
    expect(found.find((span) => span.name === 'm')).toMatchObject({ line: LIMIT + 2, lines: 1 });
    expect(found.find((span) => span.name === 'method')).toMatchObject({ line: LIMIT + 5, lines: 3 });
    expect(found.find((span) => span.name === 'arrow')).toMatchObject({ line: LIMIT + 9, lines: 2 });
    expect(found.filter((span) => span.lines > LIMIT).map((span) => span.name)).toEqual(['outer']);
  });
});
