// Part src/claude/: Claude Code's side: its settings files, its helper TTL, what setup writes. May use: kernel, config.
// Claude Code's settings files as Claude Code reads them on this machine, for doctor and setup.
// Precedence, lowest first: user < project < local < managed (code.claude.com/docs/en/settings).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from '../kernel/errors.ts';

export type SettingsScope = 'user' | 'project' | 'local' | 'managed';

export interface SettingsFile {
  scope: SettingsScope;
  path: string;
  exists: boolean;
  /** The parsed object, when the file exists and is a JSON object. */
  data?: Record<string, unknown>;
  /** Why Claude Code cannot use it (not JSON, not an object, unreadable). */
  error?: string;
}

/** Where the organisation's managed settings live; KEYBROKER_CLAUDE_MANAGED_SETTINGS moves it (tests, unusual installs). */
export function managedSettingsPath(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string {
  if (env['KEYBROKER_CLAUDE_MANAGED_SETTINGS']) return env['KEYBROKER_CLAUDE_MANAGED_SETTINGS'];
  if (platform === 'darwin') return '/Library/Application Support/ClaudeCode/managed-settings.json';
  // Claude Code's own fixed folder (not %ProgramData%); it also reads HKLM\SOFTWARE\Policies\ClaudeCode
  // value Settings (REG_SZ, the same JSON) and prefers that to the file (docs/release.md, fleet rollout).
  if (platform === 'win32') return 'C:\\Program Files\\ClaudeCode\\managed-settings.json';
  return '/etc/claude-code/managed-settings.json';
}

/** ~/.claude, or CLAUDE_CONFIG_DIR when set (Claude Code honours it). */
function claudeUserDir(env: NodeJS.ProcessEnv): string {
  if (env['CLAUDE_CONFIG_DIR']) return env['CLAUDE_CONFIG_DIR'];
  return path.join(env['HOME'] || env['USERPROFILE'] || os.homedir(), '.claude');
}

export function userSettingsPath(env: NodeJS.ProcessEnv): string {
  return path.join(claudeUserDir(env), 'settings.json');
}

/** The files in increasing precedence. */
function settingsLocations(
  env: NodeJS.ProcessEnv,
  projectDir: string,
  platform: NodeJS.Platform = process.platform,
): { scope: SettingsScope; path: string }[] {
  return [
    { scope: 'user', path: userSettingsPath(env) },
    { scope: 'project', path: path.join(projectDir, '.claude', 'settings.json') },
    { scope: 'local', path: path.join(projectDir, '.claude', 'settings.local.json') },
    { scope: 'managed', path: managedSettingsPath(env, platform) },
  ];
}

function readSettingsFile(scope: SettingsScope, file: string): SettingsFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { scope, path: file, exists: false };
    return { scope, path: file, exists: true, error: `cannot read it (${code})` };
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return { scope, path: file, exists: true, error: `it is not valid JSON (${(error as Error).message})` };
  }
  if (!data || typeof data !== 'object' || Array.isArray(data))
    return { scope, path: file, exists: true, error: 'it is not a JSON object' };
  return { scope, path: file, exists: true, data: data as Record<string, unknown> };
}

export function readClaudeSettings(
  env: NodeJS.ProcessEnv,
  projectDir: string,
  platform: NodeJS.Platform = process.platform,
): SettingsFile[] {
  // A project run from the home folder would read ~/.claude/settings.json twice.
  const seen = new Set<string>();
  return settingsLocations(env, projectDir, platform)
    .filter((location) => {
      const resolved = path.resolve(location.path);
      if (seen.has(resolved)) return false;
      seen.add(resolved);
      return true;
    })
    .map((location) => readSettingsFile(location.scope, location.path));
}

export interface Located<T> {
  value: T;
  scope: SettingsScope | 'environment';
  path?: string;
}

/** The value of a top-level key as Claude Code resolves it: the highest-precedence file that sets it. */
export function effectiveSetting(files: SettingsFile[], key: string): Located<unknown> | undefined {
  let found: Located<unknown> | undefined;
  for (const file of files) {
    if (file.data && key in file.data) found = { value: file.data[key], scope: file.scope, path: file.path };
  }
  return found;
}

/** Every place a variable is set: the process environment, then each file's `env` block. */
export function variableSources(files: SettingsFile[], env: NodeJS.ProcessEnv, name: string): Located<string>[] {
  const sources: Located<string>[] = [];
  if (env[name] !== undefined && env[name] !== '') sources.push({ value: env[name]!, scope: 'environment' });
  for (const file of files) {
    const block = file.data?.['env'];
    if (block && typeof block === 'object' && !Array.isArray(block)) {
      const value = (block as Record<string, unknown>)[name];
      if (value !== undefined && value !== '') sources.push({ value: String(value), scope: file.scope, path: file.path });
    }
  }
  return sources;
}

/** The variable as Claude Code sees it: settings `env` blocks win over the inherited environment, managed last. */
export function effectiveVariable(files: SettingsFile[], env: NodeJS.ProcessEnv, name: string): Located<string> | undefined {
  return variableSources(files, env, name).at(-1);
}

/** The program an apiKeyHelper command runs: its first shell word, quotes removed. */
export function helperProgram(command: string): string {
  const text = command.trim();
  let word = '';
  let index = 0;
  while (index < text.length && !/\s/.test(text[index]!)) {
    const char = text[index]!;
    if (char === "'") {
      const end = text.indexOf("'", index + 1);
      word += text.slice(index + 1, end === -1 ? undefined : end);
      index = end === -1 ? text.length : end + 1;
    } else if (char === '"') {
      const end = text.indexOf('"', index + 1);
      word += text.slice(index + 1, end === -1 ? undefined : end);
      index = end === -1 ? text.length : end + 1;
    } else if (char === '\\' && index + 1 < text.length) {
      word += text[index + 1];
      index += 2;
    } else {
      word += char;
      index++;
    }
  }
  return word;
}

/** A program named keybroker (what `setup --write` may replace, and what doctor expects). */
export function isKeybrokerProgram(program: string): boolean {
  return /^keybroker(\.exe)?$/i.test(path.basename(program));
}

/**
 * A path or argument as one shell word for the shell Claude Code runs apiKeyHelper through:
 * `/bin/sh -c` on Linux and macOS; on Windows Node's `shell: true`, which is `cmd.exe /d /s /c "…"`
 * (%ComSpec%; Claude Code 2.1.197 runs the helper with execa and `shell: true`). Inside double
 * quotes cmd.exe still expands `%NAME%` and cannot hold a `"`, so those are refused; a
 * double-quoted Windows path also reads the same in Git Bash (backslashes kept inside quotes).
 */
export function shellQuote(file: string, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: cmd.exe cannot quote a control character
    if (/["%\x00-\x1f]/.test(file)) {
      throw new UsageError(
        `${JSON.stringify(file)} cannot be written into a Windows apiKeyHelper: cmd.exe would expand a % or end the quoting at a "`,
        'use a path and profile name without %, " or control characters',
      );
    }
    return `"${file}"`;
  }
  return `'${file.replaceAll("'", `'\\''`)}'`;
}

/**
 * Settings a cloned repository controls: its .claude/settings.json and .claude/settings.local.json.
 * Claude Code applies them once the developer trusts the folder; keybroker never acts on them.
 */
export function isProjectScope(scope: SettingsScope | 'environment'): boolean {
  return scope === 'project' || scope === 'local';
}

export function describeScope(located: { scope: string; path?: string }): string {
  return located.path ? `${located.scope} settings ${located.path}` : `the ${located.scope}`;
}
