// docs/rotation.md "Choose your grace": every number in the table is what the code's own rules give
// for the defaults, so the table cannot drift from minimumSafeGraceMs, recommendedTtlMs and the
// desktop TTL rule.
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/config.ts';
import { formatDuration, parseDuration } from '../../src/kernel/duration.ts';
import { minimumSafeGraceMs } from '../../src/admin/rotate.ts';
import { recommendedTtlMs } from '../../src/claude/setup.ts';
import { desktopGraceMs, desktopTtlSec } from '../../src/claude/surface-setup.ts';
import { DEFAULT_CALLER_TTL_MS } from '../../src/claude/helper-ttl.ts';
import { DESKTOP_DEFAULT_TTL_MS } from '../../src/claude/surfaces.ts';
import { MCP_REFUSAL_WINDOW_MS } from '../../src/cli/commands/headers.ts';

const ROTATION_MD = path.resolve(import.meta.dirname, '../../docs/rotation.md');

/** The rows of the first table after `heading`: cells of each line, header and rule dropped. */
function tableAfter(markdown: string, heading: string): { section: string; rows: string[][] } {
  const start = markdown.indexOf(heading);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const end = markdown.indexOf('\n## ', start + heading.length);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  const lines = section.split('\n').filter((line) => line.startsWith('|'));
  return {
    section,
    rows: lines.slice(2).map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    ),
  };
}

it('the "Choose your grace" table holds what the code computes for the default refreshAfter', () => {
  const { section, rows } = tableAfter(fs.readFileSync(ROTATION_MD, 'utf8'), '## Choose your grace');
  expect(section).toContain(`default \`cache.refreshAfter\` of ${DEFAULTS.cache.refreshAfter}`);
  const refresh = parseDuration(DEFAULTS.cache.refreshAfter)!;
  const setupTtl = recommendedTtlMs(refresh);
  const desktopTtl = desktopTtlSec(refresh);
  const appTtl = DESKTOP_DEFAULT_TTL_MS / 1000;
  const expected = [
    [setupTtl, minimumSafeGraceMs(refresh, setupTtl)],
    [DEFAULT_CALLER_TTL_MS, minimumSafeGraceMs(refresh, DEFAULT_CALLER_TTL_MS)],
    [MCP_REFUSAL_WINDOW_MS, minimumSafeGraceMs(refresh, MCP_REFUSAL_WINDOW_MS)],
    [desktopTtl * 1000, desktopGraceMs(refresh, desktopTtl)],
    [appTtl * 1000, desktopGraceMs(refresh, appTtl)],
  ].map(([keeps, grace]) => [formatDuration(keeps!), formatDuration(grace!)]);
  expect(rows.map((row) => [row[1], row[2]])).toEqual(expected);
  expect(rows.map((row) => row[0])).toEqual([
    expect.stringMatching(/^Claude Code `apiKeyHelper` \(the TTL `setup` writes\)/),
    expect.stringMatching(/^Claude Code `apiKeyHelper` \(its own default TTL\)/),
    expect.stringMatching(/^MCP `headersHelper`/),
    expect.stringMatching(/^Claude Desktop \/ Cowork \(the TTL `setup --desktop` writes\)/),
    expect.stringMatching(/^Claude Desktop \/ Cowork \(the app's default TTL\)/),
  ]);
});
