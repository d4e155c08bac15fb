// What `keybroker setup` writes, through the built binary: a helper command that reads the same
// config file and profile setup was told about, from any folder and with a clean environment;
// managed settings every developer can read; a symlinked settings.json kept a link.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AWS_TEST_CREDENTIALS } from '../support/moto.ts';
import { BINARY, cleanEnv, runBinary } from '../support/binary.ts';
import { KEY, startMachine, type Machine } from './setup.ts';

const EU_KEY = 'sk-test-setup-eu-5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d';
const EU_SECRET = 'claude-code/keys/eu-alice';

let machine: Machine;
let scratch: string;
beforeAll(async () => {
  machine = await startMachine();
  await machine.moto.aws(['secretsmanager', 'create-secret', '--name', EU_SECRET, '--secret-string', JSON.stringify({ api_key: EU_KEY })]);
  // Traversable by any user, for the check that another user can read the managed file.
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-setup-'));
  fs.chmodSync(scratch, 0o755);
});
afterAll(async () => {
  await machine?.stop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/** Runs the helper command exactly as Claude Code does: through /bin/sh, from another folder, with only what a shell needs. */
function runHelperAsClaudeCode(command: string): { stdout: string; code: number } {
  const env = cleanEnv({ ...AWS_TEST_CREDENTIALS }, machine.home);
  try {
    return {
      stdout: execFileSync('/bin/sh', ['-c', command], {
        cwd: '/',
        env,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: 30_000,
      }),
      code: 0,
    };
  } catch (error) {
    const failed = error as { status: number; stdout: string; stderr: string };
    return { stdout: failed.stdout, code: failed.status };
  }
}

describe('setup writes a helper that reads what setup read', () => {
  // A folder whose name needs quoting in the shell, holding a second config with profile "eu".
  const configDir = () => path.join(scratch, "alice's configs");
  beforeAll(() => {
    fs.mkdirSync(configDir(), { recursive: true });
    fs.writeFileSync(
      path.join(configDir(), 'two.json'),
      JSON.stringify({
        profiles: {
          eu: {
            store: { type: 'aws', region: 'us-east-1', endpoint: machine.moto.endpoint },
            secret: EU_SECRET,
            cache: { backend: 'none' },
          },
        },
      }),
    );
  });

  test('--config FILE (relative) --profile eu: the helper, run by /bin/sh from / with a clean env, prints the eu key', async () => {
    const result = await machine.run(['setup', '--config', 'two.json', '--profile', 'eu'], {}, { cwd: configDir() });
    expect(result.code, result.stderr).toBe(0);
    const helper = (JSON.parse(result.stdout) as { apiKeyHelper: string }).apiKeyHelper;
    expect(helper).toContain(`--config '${path.join(configDir(), 'two.json').replaceAll("'", `'\\''`)}'`);
    const run = runHelperAsClaudeCode(helper);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(EU_KEY);
  });

  test('KEYBROKER_CONFIG and KEYBROKER_PROFILE: the same, from the environment setup ran with', async () => {
    const result = await machine.run(
      ['setup'],
      { KEYBROKER_CONFIG: path.join(configDir(), 'two.json'), KEYBROKER_PROFILE: 'eu' },
      { cwd: '/' },
    );
    expect(result.code, result.stderr).toBe(0);
    const run = runHelperAsClaudeCode((JSON.parse(result.stdout) as { apiKeyHelper: string }).apiKeyHelper);
    expect(run.stdout).toBe(EU_KEY);
  });

  test('told nothing: the bare binary, which reads the default config', async () => {
    const result = await machine.run(['setup']);
    const helper = (JSON.parse(result.stdout) as { apiKeyHelper: string }).apiKeyHelper;
    expect(helper).toBe(`'${BINARY}'`);
    expect(runHelperAsClaudeCode(helper).stdout).toBe(KEY);
  });
});

describe('setup --managed --write: every developer can read the file', () => {
  test('under a umask of 077, the new file is 0644 in 0755 folders, another user reads it, and nothing is left beside it', async () => {
    const managed = path.join(scratch, 'etc', 'claude-code', 'managed-settings.json');
    const result = await runBinary(
      ['-c', 'umask 077 && exec "$0" "$@"', BINARY, 'setup', '--managed', '--write', '--gateway', 'https://llm.example.com'],
      {
        command: '/bin/sh',
        env: { ...machine.env, KEYBROKER_CLAUDE_MANAGED_SETTINGS: managed },
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(fs.statSync(managed).mode & 0o777).toBe(0o644);
    expect(fs.statSync(path.dirname(managed)).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(scratch, 'etc')).mode & 0o777).toBe(0o755);
    const asNobody = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', managed], { encoding: 'utf8' });
    expect(JSON.parse(asNobody).apiKeyHelper).toBe(`'${BINARY}'`);
    expect(fs.readdirSync(path.dirname(managed))).toEqual(['managed-settings.json']);
  });

  test('an existing managed file left 0600 is made readable again', async () => {
    const managed = path.join(scratch, 'managed-0600.json');
    fs.writeFileSync(managed, JSON.stringify({ model: 'claude-sonnet-4-5' }), { mode: 0o600 });
    const result = await machine.run(['setup', '--managed', '--write'], { KEYBROKER_CLAUDE_MANAGED_SETTINGS: managed });
    expect(result.code, result.stderr).toBe(0);
    expect(fs.statSync(managed).mode & 0o777).toBe(0o644);
    expect(JSON.parse(fs.readFileSync(managed, 'utf8'))).toMatchObject({ model: 'claude-sonnet-4-5', apiKeyHelper: `'${BINARY}'` });
  });
});

describe('setup --write on a symlinked ~/.claude/settings.json (dotfiles)', () => {
  const userFile = () => path.join(machine.home, '.claude', 'settings.json');

  test('writes through to the link target and keeps the link', async () => {
    const target = path.join(machine.home, 'dotfiles', 'claude-settings.json');
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, JSON.stringify({ theme: 'dark' }), { mode: 0o640 });
    fs.rmSync(userFile(), { force: true });
    fs.symlinkSync(path.relative(path.dirname(userFile()), target), userFile());
    const result = await machine.run(['setup', '--write', '--gateway', 'https://llm.example.com']);
    expect(result.code, result.stderr).toBe(0);
    expect(fs.lstatSync(userFile()).isSymbolicLink()).toBe(true);
    expect(JSON.parse(fs.readFileSync(target, 'utf8'))).toMatchObject({ theme: 'dark', apiKeyHelper: `'${BINARY}'` });
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    expect(result.stderr).toContain(`through the link, to ${target}`);
    expect(fs.readdirSync(path.dirname(target))).toEqual(['claude-settings.json']);
  });

  test('a dangling link is refused with a message, and stays a link', async () => {
    fs.rmSync(userFile(), { force: true });
    fs.symlinkSync(path.join(machine.home, 'dotfiles', 'missing.json'), userFile());
    const result = await machine.run(['setup', '--write']);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/is a symlink to .*missing\.json, which cannot be resolved .*not replacing the link/);
    expect(fs.lstatSync(userFile()).isSymbolicLink()).toBe(true);
    fs.rmSync(userFile(), { force: true });
    machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'` });
  });
});
