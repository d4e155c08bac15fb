// `setup --managed` writes a path every developer's Claude Code runs: --binary names the installed
// copy, and a path outside the system folders is warned about. Through the built binary.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BINARY, cleanEnv, runBinary } from '../support/binary.ts';
import { isSystemLocation } from '../../src/claude/helper-binary.ts';

let home: string;
let env: NodeJS.ProcessEnv;
let managed: string;
beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'keybroker-setup-binary-'));
  const config = path.join(home, 'config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({ profiles: { default: { store: { type: 'aws', region: 'us-east-1' }, secret: 'claude-code/keys/{user}' } } }),
  );
  managed = path.join(home, 'etc', 'claude-code', 'managed-settings.json');
  env = cleanEnv({ KEYBROKER_CONFIG: config, KEYBROKER_CLAUDE_MANAGED_SETTINGS: managed }, home);
});
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

it('setup --managed from a build tree warns; --binary writes the installed path; a bad --binary is refused', async () => {
  // dist/keybroker lives in a build tree: not a system folder.
  const fromBuild = await runBinary(['setup', '--managed', '--gateway', 'https://llm.example.com'], { env });
  expect(fromBuild.code, fromBuild.stderr).toBe(0);
  expect(fromBuild.stderr).toContain(
    `keybroker: warning: every developer's Claude Code will run ${BINARY}, which is not in a system folder`,
  );
  expect(JSON.parse(fromBuild.stdout).apiKeyHelper).toMatch(new RegExp(`^'${BINARY}' get --config `));

  const installed = path.join(home, 'opt-copy', 'keybroker');
  fs.mkdirSync(path.dirname(installed));
  fs.copyFileSync(BINARY, installed);
  fs.chmodSync(installed, 0o755);
  const written = await runBinary(['setup', '--managed', '--write', '--binary', installed, '--gateway', 'https://llm.example.com'], {
    env,
  });
  expect(written.code, written.stderr).toBe(0);
  expect(JSON.parse(fs.readFileSync(managed, 'utf8')).apiKeyHelper).toMatch(new RegExp(`^'${installed}' get --config `));
  // The temp folder is not a system folder either: said, with the fix.
  expect(written.stderr).toMatch(/not in a system folder.*install keybroker under \/usr\/local\/bin or \/opt\/… and pass --binary/);
  // A user's own settings are the developer's business: no warning there.
  const user = await runBinary(['setup', '--binary', installed, '--gateway', 'https://llm.example.com'], { env });
  expect(user.stderr).not.toContain('warning');

  for (const [bad, message] of [
    ['keybroker', 'is not an absolute path'],
    [path.join(home, 'missing'), 'cannot be used (ENOENT)'],
    [path.join(home, 'config.json'), 'is not an executable file'],
  ] as const) {
    const refused = await runBinary(['setup', '--managed', '--write', '--binary', bad], { env });
    expect(refused.code, bad).toBe(2);
    expect(refused.stderr).toContain(message);
  }
});

it('system folders are the ones an admin installs into', () => {
  for (const file of [
    '/usr/bin/keybroker',
    '/usr/local/bin/keybroker',
    '/opt/keybroker/bin/keybroker',
    '/Applications/keybroker.app/Contents/MacOS/keybroker',
  ])
    expect(isSystemLocation(file, 'linux'), file).toBe(true);
  for (const file of [
    '/home/ada/Downloads/keybroker',
    '/tmp/keybroker',
    '/usr/local/bin/../../../home/ada/keybroker',
    '/work/main/dist/keybroker',
  ])
    expect(isSystemLocation(file, 'linux'), file).toBe(false);
  expect(isSystemLocation('C:\\Program Files\\keybroker\\keybroker.exe', 'win32')).toBe(true);
  expect(isSystemLocation('C:\\Users\\ada\\Downloads\\keybroker.exe', 'win32')).toBe(false);
});
