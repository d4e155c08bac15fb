// What setup writes on each platform: the managed-settings file Claude Code reads there, and an
// apiKeyHelper value the shell Claude Code runs it through reads as one program path (spaces kept).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../src/config/config.ts';
import { helperProgram, managedSettingsPath, shellQuote } from '../../src/claude/settings.ts';
import { settingsSnippet } from '../../src/claude/setup.ts';
import { KeybrokerError } from '../../src/kernel/errors.ts';

describe('managed settings: where Claude Code reads them on each platform', () => {
  it.each([
    ['linux', '/etc/claude-code/managed-settings.json'],
    ['darwin', '/Library/Application Support/ClaudeCode/managed-settings.json'],
    // Claude Code's fixed folder on Windows (2.1.197: "C:\\Program Files\\ClaudeCode"), not %ProgramData%.
    ['win32', 'C:\\Program Files\\ClaudeCode\\managed-settings.json'],
  ] as const)('%s: %s', (platform, file) => {
    expect(managedSettingsPath({ ProgramData: 'D:\\Data' }, platform)).toBe(file);
  });

  it('KEYBROKER_CLAUDE_MANAGED_SETTINGS moves it on every platform', () => {
    for (const platform of ['linux', 'darwin', 'win32'] as const)
      expect(managedSettingsPath({ KEYBROKER_CLAUDE_MANAGED_SETTINGS: '/x.json' }, platform)).toBe('/x.json');
  });
});

describe('apiKeyHelper values with spaces in the path', () => {
  // settingsSnippet reads only the refresh interval of the profile.
  const profile = (): Profile => ({ cache: { refreshAfterMs: 30 * 60_000 } }) as unknown as Profile;

  it('POSIX: /bin/sh -c runs the quoted path with its spaces and quotes, and the profile as one word', () => {
    const program = shellQuote("/Applications/Key Broker/it's/keybroker", 'darwin');
    const snippet = settingsSnippet({ program, target: { profile: 'eu west', notCarried: [] }, profile: profile(), platform: 'darwin' });
    // What /bin/sh makes of it: the words the program gets.
    const words = spawnSync('/bin/sh', ['-c', `printf '%s\\n' ${snippet.apiKeyHelper}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);
    expect(words).toEqual(["/Applications/Key Broker/it's/keybroker", 'get', '--profile', 'eu west']);
    expect(helperProgram(snippet.apiKeyHelper)).toBe("/Applications/Key Broker/it's/keybroker");
  });

  it('Windows: a double-quoted path, as cmd.exe /d /s /c and Git Bash both read it', () => {
    const program = shellQuote('C:\\Program Files\\keybroker\\keybroker.exe', 'win32');
    const snippet = settingsSnippet({ program, target: { profile: 'eu west', notCarried: [] }, profile: profile(), platform: 'win32' });
    expect(snippet.apiKeyHelper).toBe('"C:\\Program Files\\keybroker\\keybroker.exe" get --profile "eu west"');
    expect(helperProgram(snippet.apiKeyHelper)).toBe('C:\\Program Files\\keybroker\\keybroker.exe');
    // Git Bash (a POSIX shell) keeps the backslashes inside double quotes: the same words.
    const words = spawnSync('/bin/sh', ['-c', `printf '%s\\n' ${snippet.apiKeyHelper}`], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);
    expect(words).toEqual(['C:\\Program Files\\keybroker\\keybroker.exe', 'get', '--profile', 'eu west']);
  });

  it('Windows: refuses what cmd.exe would expand or cut inside quotes (%VAR%, ")', () => {
    for (const bad of ['C:\\Users\\%USERNAME%\\keybroker.exe', 'C:\\a"b\\keybroker.exe', 'eu\nwest']) {
      expect(() => shellQuote(bad, 'win32')).toThrow(KeybrokerError);
    }
    expect(shellQuote('100%', 'linux')).toBe("'100%'");
  });
});
