// The docs check: the docs (README.md and docs/*.md) and the built binary say the same thing where a machine can tell.
// Commands and flags (each command's --help against the README's commands), configuration
// fields (the README's table against the schema, every store type's too) and environment
// variables (the README's table against what the code reads). Each fails when one side gains
// something the other lacks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BINARY } from '../support/binary.ts';
import { FileSchema } from '../../src/config/config.ts';
import { storeSchemas } from '../../providers/schemas.ts';
import { DOCTOR_BUDGET_MS } from '../../src/doctor/doctor.ts';

const root = path.resolve(import.meta.dirname, '../..');
// The README and every file under docs/, read as one text: a fact may live in any of them.
const readme = [
  'README.md',
  ...fs
    .readdirSync(path.join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
]
  .map((file) => fs.readFileSync(path.join(root, file), 'utf8'))
  .join('\n');

function help(args: string[]): string {
  return execFileSync(BINARY, [...args, '--help'], { encoding: 'utf8', env: { PATH: process.env['PATH'], HOME: '/nonexistent' } });
}

/** The rows of the README table whose header row starts with `| header |`. */
/** The rows of every README table headed `| header |` (the SSO section has its own field table). */
function tableRows(header: string): string[][] {
  const lines = readme.split('\n');
  const starts = lines.flatMap((line, index) => (/^\| (\S+) +\|/.exec(line)?.[1] === header ? [index] : []));
  expect(starts.length, `README has a table headed "${header}"`).toBeGreaterThan(0);
  const rows: string[][] = [];
  for (const start of starts) {
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      rows.push(
        line
          .split(/(?<!\\)\|/)
          .slice(1, -1)
          .map((cell) => cell.trim()),
      );
    }
  }
  return rows;
}

/** The backticked spans of one line (a README-wide match would pair the fences' backticks). */
const backticked = (line: string) => [...line.matchAll(/`([^`\n]+)`/g)].map((match) => match[1]!);

describe('commands', () => {
  const listed = [...help([]).matchAll(/^ {2}([a-z]+) {2,}/gm)].map((match) => match[1]!);

  it('every command of keybroker --help is in the README, and the README names no other', () => {
    expect(listed).toContain('get');
    for (const name of listed) expect(readme, `README mentions \`keybroker ${name}\``).toMatch(new RegExp(`\`keybroker ${name}\\b`));
    const named = new Set([...readme.matchAll(/`keybroker ([a-z][a-z-]*)/g)].map((match) => match[1]!));
    for (const name of named) expect(listed, `README's \`keybroker ${name}\` is a command`).toContain(name);
  });

  it("every flag the README shows with a command is one that command's --help lists", () => {
    // `keybroker …` in a line's backticks, and command lines in code blocks (after `$ ` or a pipe).
    const snippets = readme
      .split('\n')
      .flatMap((line) => [
        ...backticked(line).filter((text) => text.startsWith('keybroker ')),
        ...(/^(?:\$ |.*\| )?(keybroker [a-z][^#`]*)/.exec(line.startsWith('|') ? '' : line)?.slice(1) ?? []),
      ]);
    expect(snippets.length).toBeGreaterThan(30);
    const helps = new Map<string, string>();
    for (const snippet of snippets) {
      const command = snippet.split(/\s+/)[1]!;
      if (!listed.includes(command)) continue;
      if (!helps.has(command)) helps.set(command, help([command]) + help([]));
      for (const flag of snippet.match(/--[a-z][a-z-]*/g) ?? []) {
        expect(helps.get(command), `\`${snippet.trim()}\`: ${command} --help lists ${flag}`).toMatch(new RegExp(`${flag}\\b`));
      }
    }
  });

  it('doctor --help and the README give the budget the code has', () => {
    const seconds = DOCTOR_BUDGET_MS / 1000;
    expect(help(['doctor'])).toContain(`at most ${seconds} s`);
    expect(readme).toContain(`a budget of ${seconds} s`);
  });
});

/** Dotted field paths a valibot object schema accepts, through optional, pipe and record wrappers. */
function fieldsOf(schema: unknown, prefix = ''): string[] {
  const node = schema as { type: string; entries?: Record<string, unknown>; wrapped?: unknown; pipe?: unknown[]; value?: unknown };
  if (node.type === 'optional') return fieldsOf(node.wrapped, prefix);
  if (node.pipe && node.pipe[0] !== schema) return fieldsOf(node.pipe[0], prefix);
  if (node.type === 'record') return fieldsOf(node.value, `${prefix}NAME.`);
  if (!node.entries) return [];
  return Object.entries(node.entries).flatMap(([name, child]) => {
    const here = `${prefix}${name}`;
    const inner = fieldsOf(child, `${here}.`);
    return inner.length ? [here, ...inner] : [here];
  });
}

describe('configuration fields', () => {
  /** `field` or `store.field@type`, as the README's table lists them. */
  function readmeFields(): Set<string> {
    const fields = new Set<string>();
    for (const [cell] of tableRows('field')) {
      // A cell is "`a`, `b` (types)" or several such groups: "`store.caFile` (azure, gcp), `store.caCert` (vault)".
      for (const group of cell!.split(/\),\s*/)) {
        const types = /\(([a-z, ]+)\)\s*$/.exec(group.endsWith(')') ? group : `${group})`)?.[1]?.split(/,\s*/) ?? [];
        for (const name of backticked(group)) {
          const field = name.replace(/^profiles\.NAME\./, '');
          if (field.startsWith('store.')) for (const type of types) fields.add(`${field}@${type}`);
          else fields.add(field);
        }
      }
    }
    return fields;
  }

  function schemaFields(): Set<string> {
    const fields = new Set<string>();
    for (const field of fieldsOf(FileSchema)) {
      if (field === 'profiles' || field === 'profiles.NAME') continue;
      // The same notes are accepted at the top and per profile; the store's own fields come next.
      const inProfile = field.replace(/^profiles\.NAME\./, '');
      if (inProfile === 'cache' || inProfile.startsWith('store.') || inProfile === 'keyIssuer') continue;
      fields.add(inProfile);
    }
    for (const [type, schema] of Object.entries(storeSchemas)) {
      for (const field of fieldsOf(schema)) {
        if (field === 'type' || field.startsWith('auth.')) continue;
        fields.add(`store.${field}@${type}`);
      }
    }
    return fields;
  }

  it("the README's table lists every field the schema accepts, every store type's too, and no other", () => {
    const documented = readmeFields();
    const accepted = schemaFields();
    expect([...accepted].filter((field) => !documented.has(field)).sort(), 'in the schema, not in the README').toEqual([]);
    expect([...documented].filter((field) => !accepted.has(field)).sort(), 'in the README, not in the schema').toEqual([]);
  });
});

describe('environment variables', () => {
  it("the README's table lists every KEYBROKER_* variable the code reads, and no other", () => {
    const documented = new Set(
      tableRows('variable')
        .flatMap(([cell]) => backticked(cell!))
        .map((name) => name.replace(/=.*$/, '')),
    );
    const read = new Set<string>();
    for (const dir of ['src', 'providers', 'bin']) {
      for (const file of fs.readdirSync(path.join(root, dir), { recursive: true }) as string[]) {
        if (!file.endsWith('.ts') || (dir === 'bin' && file !== 'keybroker.ts')) continue;
        for (const match of fs.readFileSync(path.join(root, dir, file), 'utf8').matchAll(/\bKEYBROKER_[A-Z_]*[A-Z]\b(?!__)/g))
          read.add(match[0]);
      }
    }
    read.delete('KEYBROKER_BUNDLE');
    read.delete('KEYBROKER_VERSION');
    expect([...read].filter((name) => !documented.has(name)).sort(), 'read by the code, not in the README').toEqual([]);
    expect([...documented].filter((name) => !read.has(name)).sort(), 'in the README, not read by the code').toEqual([]);
  });
});
