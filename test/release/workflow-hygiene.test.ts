// Our workflows and the Action, parsed as YAML and held to release/workflow-hygiene.ts: actions
// pinned by commit, no outside value expanded inside a script, least permissions per job, install
// scripts only for the packages package.json allows. The checker is shown to refuse planted faults.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allowedScripts, checkWorkflow } from '../../release/workflow-hygiene.ts';

const root = path.resolve(import.meta.dirname, '../..');
const allowed = allowedScripts(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const FILES = ['.github/workflows/ci.yml', '.github/workflows/release.yml', 'action.yml'];

const CHECKOUT = 'actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1';
/** A clean workflow; each planted fault replaces one piece of it. */
function workflow(parts: { uses?: string; run?: string; topPermissions?: string; jobPermissions?: string } = {}): string {
  return [
    'on: push',
    parts.topPermissions ?? 'permissions: {}',
    'jobs:',
    '  test:',
    '    runs-on: ubuntu-24.04',
    parts.jobPermissions ?? '    permissions:\n      contents: read',
    '    steps:',
    `      - uses: ${parts.uses ?? CHECKOUT}`,
    '      - run: |',
    ...(parts.run ?? 'npm ci --ignore-scripts\nnpm rebuild esbuild protobufjs @anthropic-ai/claude-code')
      .split('\n')
      .map((line) => `          ${line}`),
  ].join('\n');
}

describe('workflow hygiene', () => {
  it.each(FILES)('%s keeps every rule', (file) => {
    expect(checkWorkflow(fs.readFileSync(path.join(root, file), 'utf8'), file, allowed)).toEqual([]);
  });

  it('the checker passes the clean planted workflow (so each fault below is the only problem)', () => {
    expect(checkWorkflow(workflow(), 'planted.yml', allowed)).toEqual([]);
  });

  it('refuses an action pinned by tag, and a SHA pin without the tag it stands for', () => {
    expect(checkWorkflow(workflow({ uses: 'actions/checkout@v4' }), 'planted.yml', allowed)).toEqual([
      'planted.yml:9: actions/checkout@v4 is not pinned by a full 40-hex commit SHA',
    ]);
    expect(checkWorkflow(workflow({ uses: 'actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1' }), 'planted.yml', allowed)).toEqual([
      'planted.yml:9: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 has no comment naming the tag it pins',
    ]);
  });

  it('refuses an unpinned action written as a flow mapping, which no line check sees', () => {
    const planted = workflow().replace(
      `      - uses: ${CHECKOUT}`,
      '      - { uses: actions/checkout@v4, with: { persist-credentials: false } }',
    );
    expect(checkWorkflow(planted, 'planted.yml', allowed)).toEqual([
      'planted.yml: actions/checkout@v4 is not pinned by a full 40-hex commit SHA',
    ]);
  });

  it('refuses ${{ github.ref_name }} (and any outside value) inside a run: script', () => {
    const problems = checkWorkflow(
      workflow({ run: 'npm ci --ignore-scripts\nnpm rebuild esbuild protobufjs @anthropic-ai/claude-code\necho "${{ github.ref_name }}"' }),
      'planted.yml',
      allowed,
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('expands ${{ github.ref_name }} inside run:; pass it through env:');
    for (const outside of ['github.head_ref', 'github.event.pull_request.title', 'inputs.version', 'secrets.TOKEN']) {
      expect(
        checkWorkflow(
          workflow({ run: `npm ci --ignore-scripts\nnpm rebuild esbuild protobufjs @anthropic-ai/claude-code\necho \${{ ${outside} }}` }),
          'planted.yml',
          allowed,
        ),
      ).toHaveLength(1);
    }
    expect(
      checkWorkflow(
        workflow({
          run: 'npm ci --ignore-scripts\nnpm rebuild esbuild protobufjs @anthropic-ai/claude-code\necho ${{ matrix.os }} ${{ runner.os }}',
        }),
        'planted.yml',
        allowed,
      ),
    ).toEqual([]);
  });

  it('refuses write permissions at the top and a job without its own permissions', () => {
    expect(checkWorkflow(workflow({ topPermissions: 'permissions:\n  contents: write' }), 'planted.yml', allowed)).toEqual([
      'planted.yml: top-level permissions grant write; grant it in the job that needs it',
    ]);
    expect(checkWorkflow(workflow({ jobPermissions: '' }), 'planted.yml', allowed)).toEqual([
      'planted.yml: job test has no permissions: of its own',
    ]);
  });

  it('refuses npm ci that runs install scripts, and a rebuild that leaves out a package allowScripts allows', () => {
    expect(
      checkWorkflow(workflow({ run: 'npm ci\nnpm rebuild esbuild protobufjs @anthropic-ai/claude-code' }), 'planted.yml', allowed),
    ).toEqual([
      'planted.yml job test: "npm ci" runs every dependency\'s install script (npm before 11.16 ignores allowScripts); add --ignore-scripts',
    ]);
    expect(checkWorkflow(workflow({ run: 'npm ci --ignore-scripts\nnpm rebuild esbuild' }), 'planted.yml', allowed)).toEqual([
      'planted.yml job test: after npm ci --ignore-scripts, no "npm rebuild" of protobufjs, @anthropic-ai/claude-code (package.json allowScripts)',
    ]);
  });
});
