// Docs that cannot drift: every JSON config example in README.md and docs/ is read by the real
// config loader, every `keybroker …` command line in a code block is parsed by the real CLI
// parser, and the README's exit-code table is the code's. Each checker is also run on planted
// drift, so a checker that stopped finding anything fails too.
//
// Placeholders: in a config example, an entry `"…": "…"` stands for "the rest of this profile, as
// above"; a profile holding one gets a minimal store (`aws`, `claude-code/keys/{user}`) where it
// names none. `VERSION` in a command line stands for a release number. Nothing else is exempt.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigText, profileNames, resolveProfile } from '../../src/config/config.ts';
import { EXIT_MEANINGS } from '../../src/kernel/errors.ts';
import { parseCommandLine, topLevelRequest } from '../../src/cli/main.ts';

const root = path.resolve(import.meta.dirname, '../..');
const docFiles = [
  'README.md',
  ...fs
    .readdirSync(path.join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];

interface Block {
  file: string;
  line: number;
  lang: string;
  text: string;
}

/** Fenced code blocks, indented ones (inside a list) included, with their indentation removed. */
function codeBlocks(file: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split('\n');
  for (let at = 0; at < lines.length; at++) {
    const open = /^( *)```(\w*)\s*$/.exec(lines[at]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let end = at + 1;
    while (end < lines.length && !/^ *```\s*$/.test(lines[end]!)) body.push(lines[end++]!.slice(indent));
    blocks.push({ file, line: at + 1, lang: open[2]!, text: body.join('\n') });
    at = end;
  }
  return blocks;
}

const PLACEHOLDER = '…';
const MINIMAL_PROFILE = { store: { type: 'aws', region: 'us-east-1' }, secret: 'claude-code/keys/{user}' };
const PROFILE_FIELDS = new Set([
  'store',
  'oidc',
  'cache',
  'keyIssuer',
  'headers',
  'gatewayHeaders',
  'secret',
  'field',
  'user',
  'timeout',
  'gateway',
]);

/** Undefined when the block is a config example the loader accepts (or no config at all); else why not. */
function configProblem(block: Block): string | undefined {
  let json: unknown;
  const text = block.text.trim();
  try {
    // A fragment `"keyIssuer": {…}` is one field of a profile.
    json = JSON.parse(text.startsWith('"') ? `{${text}}` : text);
  } catch (error) {
    return `not JSON: ${(error as Error).message}`;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return undefined;
  let config = json as Record<string, unknown>;
  const keys = Object.keys(config);
  if (!('profiles' in config)) {
    if (!text.startsWith('"') || !keys.every((key) => PROFILE_FIELDS.has(key))) return undefined; // Claude's settings, an output
    config = { profiles: { default: { ...MINIMAL_PROFILE, ...config } } };
  }
  for (const profile of Object.values((config['profiles'] ?? {}) as Record<string, Record<string, unknown>>)) {
    if (!(PLACEHOLDER in profile)) continue;
    delete profile[PLACEHOLDER];
    if (!profile['store'] && !profile['oidc']) Object.assign(profile, MINIMAL_PROFILE);
  }
  const source = `${block.file}:${block.line}`;
  try {
    // Read as the machine-wide file: it may hold all a user file may, and "enforce".
    const layer = { source, role: 'machine' as const, data: parseConfigText(JSON.stringify(config), source) };
    for (const name of profileNames([layer])) resolveProfile([layer], name);
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

/** `keybroker …` where a shell runs it: line start (after `$ `, `sudo `, `run: `), after `|`, `&&`, `;` or `$(`. */
function commandLines(block: Block): string[] {
  const found: string[] = [];
  for (const line of block.text.split('\n')) {
    for (const match of line.matchAll(
      /(?:^\s*(?:-\s+)?(?:run:\s+)?(?:\$\s+)?(?:sudo\s+)?|\|\s*|&&\s*|;\s*|\$\()keybroker((?:\s+[^|;&)#<>]*)?)/g,
    )) {
      found.push(`keybroker${match[1]!.trimEnd()}`);
    }
  }
  return found;
}

/** Shell words of a simple command line (quotes removed; `$VAR` and `VERSION` kept as words). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2] ?? match[3]!);
}

/** Undefined when the real parser takes the line; else its complaint. */
async function commandProblem(line: string): Promise<string | undefined> {
  const argv = words(line).slice(1);
  if (topLevelRequest(argv)) return undefined;
  try {
    await parseCommandLine(argv);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const blocks = docFiles.flatMap((file) => codeBlocks(file, fs.readFileSync(path.join(root, file), 'utf8')));

describe('config examples', () => {
  const json = blocks.filter((block) => block.lang === 'json');

  it('every JSON block in README.md and docs/ is JSON, and every config example is one the loader accepts', () => {
    expect(json.length).toBeGreaterThan(5);
    const problems = json.flatMap((block) => {
      const problem = configProblem(block);
      return problem ? [`${block.file}:${block.line}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
  });

  it('finds planted drift: an unknown field, a bad duration, a wrong store type, a broken fragment', () => {
    const planted = (text: string) => configProblem({ file: 'planted.md', line: 1, lang: 'json', text });
    expect(
      planted('{"profiles": {"default": {"store": {"type": "aws", "region": "us-east-1"}, "secret": "k/{user}", "refreshAfter": "30m"}}}'),
    ).toMatch(/refreshAfter/);
    expect(planted('{"profiles": {"default": {"store": {"type": "aws"}, "secret": "k/{user}", "timeout": "5 seconds"}}}')).toMatch(
      /timeout/,
    );
    expect(planted('{"profiles": {"default": {"store": {"type": "s3"}, "secret": "k/{user}"}}}')).toMatch(/type/);
    expect(
      planted('"keyIssuer": { "type": "litellm", "url": "https://llm.example.com", "masterKeyEnv": "AWS_SECRET_ACCESS_KEY" }'),
    ).toBeDefined();
    expect(planted('{"apiKeyHelper": "/usr/local/bin/keybroker"}')).toBeUndefined();
    expect(planted('{"profiles": {"default": {"…": "…", "headers": {"x-api-key": "{key}"}}}}')).toBeUndefined();
  });
});

describe('command lines', () => {
  const lines = blocks.filter((block) => block.lang !== 'json').flatMap((block) => commandLines(block).map((line) => ({ block, line })));

  it('every `keybroker …` line in a code block is a command and flags the real parser takes', async () => {
    expect(lines.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const { block, line } of lines) {
      const problem = await commandProblem(line);
      if (problem) problems.push(`${block.file}:${block.line}: \`${line}\`: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it('finds planted drift: an unknown command, an unknown flag, a value missing', async () => {
    expect(
      commandLines({
        file: 'x',
        line: 1,
        lang: 'sh',
        text: 'printf %s "$KEY" | keybroker admin put --user a\n$ keybroker doctor --json\neval "$(keybroker env --format gitlab)"',
      }),
    ).toEqual(['keybroker admin put --user a', 'keybroker doctor --json', 'keybroker env --format gitlab']);
    expect(await commandProblem('keybroker fetch')).toMatch(/unknown command "fetch"/);
    expect(await commandProblem('keybroker get --refresh-now')).toMatch(/--refresh-now/);
    expect(await commandProblem('keybroker admin rotate --user')).toMatch(/--user/);
    expect(await commandProblem('keybroker --profile eu status')).toBeUndefined();
  });
});

describe('exit codes', () => {
  /** The README's exit-code table: code → meaning. */
  function readmeExitCodes(readme: string): Map<number, string> {
    const lines = readme.split('\n');
    const start = lines.findIndex((line) => /^\| code +\| meaning +\|/.test(line));
    const table = new Map<number, string>();
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const [code, meaning] = line
        .split('|')
        .slice(1, 3)
        .map((cell) => cell.trim());
      table.set(Number(code), meaning!);
    }
    return table;
  }

  it("the README's table has every exit code the code has, each with the code's meaning, and no other", () => {
    const table = readmeExitCodes(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
    expect(Object.fromEntries(table)).toEqual(
      Object.fromEntries(Object.entries(EXIT_MEANINGS).map(([code, meaning]) => [Number(code), meaning])),
    );
  });

  it('finds planted drift: a code missing, a meaning changed', () => {
    const good = readmeExitCodes(fs.readFileSync(path.join(root, 'README.md'), 'utf8'));
    const planted = readmeExitCodes(
      fs.readFileSync(path.join(root, 'README.md'), 'utf8').replace(/\| 11 +\| output failed +\|/, '| 12 | output failed |'),
    );
    expect(planted).not.toEqual(good);
    expect(planted.has(11)).toBe(false);
  });
});
