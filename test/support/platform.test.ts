// The test set-up's macOS and Windows branches, run here with the platform injected: the commands
// each would run (CI runs them for real on macos-14, macos-15-intel and windows-2025), and the skip
// list every platform prints at the end of a run.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { filesSkippedOn, LINUX_ONLY_FILES, NOT_LINUX, platformSetup, skipLogFile, skipOn, skipsOfRun, type Command } from './platform.ts';
import { SYSTEM_TOOLS, toolsFor } from './system-tools.ts';

const root = path.resolve(import.meta.dirname, '../..');
const options = { workDir: '/tmp/run', password: 'pw-test' };

/** A runner that records each command and answers from `answers` (by "file arg0"). */
function recorder(answers: Record<string, string[]> = {}) {
  const commands: string[] = [];
  const run = ({ file, args }: Command) => {
    commands.push([file, ...args].join(' '));
    return answers[[file, args[0]].join(' ')]?.shift() ?? '';
  };
  return { commands, run };
}

describe('platformSetup', () => {
  it('macOS: a throwaway keychain, unlocked, first in the list and the default for the run, then the old default back and the keychain deleted', () => {
    const { commands, run } = recorder({
      'security default-keychain': ['    "/Users/runner/Library/Keychains/login.keychain-db"\n'],
      'security list-keychains': ['    "/Users/runner/Library/Keychains/login.keychain-db"\n    "/Library/Keychains/System.keychain"\n'],
    });
    const session = platformSetup('darwin', run, options);
    session.setUp();
    const keychain = '/tmp/run/keybroker-test.keychain-db';
    expect(commands).toEqual([
      'security default-keychain -d user',
      'security list-keychains -d user',
      `security create-keychain -p pw-test ${keychain}`,
      `security set-keychain-settings ${keychain}`,
      `security unlock-keychain -p pw-test ${keychain}`,
      `security list-keychains -d user -s ${keychain} /Users/runner/Library/Keychains/login.keychain-db /Library/Keychains/System.keychain`,
      `security default-keychain -d user -s ${keychain}`,
    ]);
    commands.length = 0;
    session.tearDown();
    expect(commands).toEqual([
      'security default-keychain -d user -s /Users/runner/Library/Keychains/login.keychain-db',
      'security list-keychains -d user -s /Users/runner/Library/Keychains/login.keychain-db /Library/Keychains/System.keychain',
      `security delete-keychain ${keychain}`,
    ]);
  });

  it("Windows: the runner user's Credential Manager, and only the keybroker items the run added are removed", () => {
    const before =
      'Currently stored credentials:\n\n    Target: LegacyGeneric:target=old-dev.keybroker\n    Type: Generic\n\n    Target: git:https://github.com\n';
    const after = `${before}\n    Target: LegacyGeneric:target=default.keybroker\n    Type: Generic\n    Target: LegacyGeneric:target=other-tool\n`;
    const { commands, run } = recorder({ 'cmdkey /list': [before, after] });
    const session = platformSetup('win32', run, options);
    session.setUp();
    session.tearDown();
    expect(commands).toEqual(['cmdkey /list', 'cmdkey /list', 'cmdkey /delete:default.keybroker']);
  });

  it('Linux: nothing to set up (each keychain test starts its own Secret Service)', () => {
    const { commands, run } = recorder();
    const session = platformSetup('linux', run, options);
    session.setUp();
    session.tearDown();
    expect(commands).toEqual([]);
  });
});

describe('skips', () => {
  const runEnv = { KEYBROKER_TEST_RUN: `skip-unit-${process.pid}` };
  afterEach(() => {
    vi.unstubAllEnvs();
    fs.rmSync(skipLogFile(runEnv), { force: true });
  });

  it('skipOn prints the reason and records it for the end of the run; on Linux it skips nothing', () => {
    vi.stubEnv('KEYBROKER_TEST_RUN', runEnv.KEYBROKER_TEST_RUN);
    const printed = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let lines: string[];
    try {
      expect(skipOn(NOT_LINUX, 'reads /proc', path.join(root, 'test/x.test.ts'), 'linux')).toBe(false);
      expect(skipOn(NOT_LINUX, 'reads /proc', path.join(root, 'test/x.test.ts'), 'darwin')).toBe(true);
      lines = printed.mock.calls.map(([text]) => String(text));
    } finally {
      printed.mockRestore();
    }
    expect(lines).toEqual(['skipped on darwin: test/x.test.ts: reads /proc\n']);
    const skips = skipsOfRun('darwin', runEnv);
    expect(skips).toContain('skipped on darwin: test/x.test.ts: reads /proc');
    expect(skips).toContain(
      `skipped on darwin: test/e2e/keychain.test.ts: ${LINUX_ONLY_FILES.find(({ file }) => file === 'test/e2e/keychain.test.ts')!.reason}`,
    );
    expect(fs.existsSync(skipLogFile(runEnv))).toBe(false);
  });

  it('leaves out the Linux-only files on macOS and Windows only, and each of them exists', () => {
    expect(filesSkippedOn('linux')).toEqual([]);
    expect(filesSkippedOn('darwin')).toEqual(filesSkippedOn('win32'));
    expect(filesSkippedOn('darwin')).toContain('test/e2e/file-trust.test.ts');
    const missing = LINUX_ONLY_FILES.filter(({ file }) => !fs.existsSync(path.join(root, file)));
    expect(missing).toEqual([]);
  });

  it('asks macOS and Windows for moto, the aws CLI and openssl only, never for the Linux tools', () => {
    const names = (platform: NodeJS.Platform) =>
      toolsFor(platform)
        .map((tool) => tool.command)
        .sort();
    expect(names('darwin')).toEqual(['aws', 'moto_server', 'openssl']);
    expect(names('win32')).toEqual(names('darwin'));
    expect(names('linux')).toEqual(SYSTEM_TOOLS.map((tool) => tool.command).sort());
  });
});
