// The test set-up's system check: a missing tool is named, with the exact command that installs it,
// before any test runs (never a later symptom such as "gnome-keyring-daemon created no login keyring").
import { describe, expect, it } from 'vitest';
import { ensureSystemTools, NO_INSTALL_VARIABLE, SYSTEM_TOOLS, type SystemTool } from './system-tools.ts';

const missing: SystemTool = {
  command: 'keybroker-test-no-such-tool',
  apt: ['keybroker-no-such-package'],
  neededBy: 'nothing real',
  testsNeedIt: true,
};
const missingPip: SystemTool = {
  command: 'keybroker-test-no-such-server',
  apt: [],
  pip: "'no-such[server]'",
  neededBy: 'nothing real either',
  testsNeedIt: true,
};
const benchOnly: SystemTool = {
  command: 'keybroker-test-no-such-bench',
  apt: ['keybroker-no-such-bench'],
  neededBy: 'npm run bench',
  testsNeedIt: false,
};

function check(tools: SystemTool[]) {
  const log: string[] = [];
  let error: Error | undefined;
  try {
    ensureSystemTools({ tools, env: { PATH: process.env['PATH'], [NO_INSTALL_VARIABLE]: '1' }, log: (line) => log.push(line) });
  } catch (caught) {
    error = caught as Error;
  }
  return { error, log };
}

describe("the test set-up's system check", () => {
  it('names each missing tool, what needs it, and the exact apt-get and pip commands, without installing when told not to', () => {
    const { error, log } = check([missing, missingPip]);
    expect(error?.message).toContain('keybroker-test-no-such-tool: nothing real');
    expect(error?.message).toContain('keybroker-test-no-such-server: nothing real either');
    expect(error?.message).toMatch(/apt-get install -y --no-install-recommends keybroker-no-such-package$/m);
    expect(error?.message).toMatch(/^ {2}pip install 'no-such\[server\]'$/m);
    expect(log.join('\n')).not.toMatch(/installing/);
  });

  it('does not stop the tests for a tool only the benchmark needs, but says how to get it', () => {
    const { error, log } = check([benchOnly]);
    expect(error).toBeUndefined();
    expect(log).toEqual([
      'test set-up: keybroker-test-no-such-bench is missing (only npm run bench needs it): apt-get install keybroker-no-such-bench',
    ]);
  });

  it('passes quietly when everything is there (this run got this far)', () => {
    expect(check(SYSTEM_TOOLS.filter((tool) => tool.testsNeedIt))).toEqual({ error: undefined, log: [] });
  });
});
