// The edge: which command argv picks, and every failure as one stderr line and its exit code.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-cli-'));
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

/** Runs `keybroker ...args` in a HOME with no configuration at all. */
async function run(...args: string[]) {
  let stdout = '';
  const stderr: string[] = [];
  const env = { HOME: home, XDG_CONFIG_HOME: path.join(home, '.config'), KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json') };
  const code = await main(args, {
    env,
    output: { stdout: (text) => (stdout += text), stderr: (line) => stderr.push(line) },
    now: Date.now,
    isTTY: false,
  });
  return { code, stdout, stderr };
}

it('refuses an unknown command with exit 2 and says where the commands are listed', async () => {
  expect(await run('frobnicate')).toEqual({
    code: 2,
    stdout: '',
    stderr: ['keybroker: unknown command "frobnicate": run \'keybroker --help\' for the commands'],
  });
});

it('runs get when argv starts with a flag or is empty (what Claude Code runs)', async () => {
  const noConfig = /^keybroker: no keybroker configuration found: /;
  for (const args of [[], ['--profile', 'eu'], ['get']]) {
    const result = await run(...args);
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toHaveLength(1);
    expect(result.stderr[0]).toMatch(noConfig);
  }
});

it('refuses an option the command does not take with exit 2, naming the command', async () => {
  const result = await run('--no-such-flag');
  expect(result).toMatchObject({ code: 2, stdout: '' });
  expect(result.stderr).toEqual([expect.stringMatching(/^keybroker: get: .*--no-such-flag.*: run 'keybroker get --help'$/)]);
});

it('takes global flags before the command, as gh, kubectl and the AWS CLI do', async () => {
  const config = path.join(home, 'eu.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ profiles: { eu: { store: { type: 'aws', region: 'eu-west-1' }, secret: 'claude-code/keys/{user}' } } }),
  );
  // `config` prints the effective profile: the leading flags chose the file and the profile.
  const shown = await run('--config', config, '--profile', 'eu', 'config');
  expect(shown.code).toBe(0);
  expect(shown.stdout).toContain('eu-west-1');
  expect(shown.stdout).toContain(config);
  const verbose = await run('-v', `--config=${config}`, '--profile=nope', 'status');
  expect(verbose.code).toBe(3);
  expect(verbose.stderr.at(-1)).toMatch(/"nope"/);
  expect((await run('-v', 'frobnicate')).stderr).toEqual([
    'keybroker: unknown command "frobnicate": run \'keybroker --help\' for the commands',
  ]);
});
