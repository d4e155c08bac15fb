// Bad input is refused when the configuration is read, by every command that reads it, with the
// file and the field named, never met later as a failure at run time (issue 9 item 9, issue 16
// items 4, 5, 7). The built binary against a real moto_server.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, type Moto } from '../support/moto.ts';
import { BINARY, runBinary, type RunResult } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';

let moto: Moto;
let home: TestHome;
let counter = 0;

beforeAll(async () => {
  moto = await startMoto();
  home = makeTestHome();
});
afterAll(async () => {
  await moto?.stop();
  home?.remove();
});

async function provision(value: string): Promise<string> {
  const name = `e2e/config-errors/${++counter}`;
  await moto.aws(['secretsmanager', 'create-secret', '--name', name, '--secret-string', value]);
  return name;
}

function run(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runBinary(args, { env: home.env(extra) });
}

/** Exit 3 with one stderr line (`config` still lists the files it searched on stdout; get prints nothing). */
function expectConfigError(result: RunResult, text: string | RegExp): void {
  expect(result.code).toBe(3);
  expect(result.stdout).not.toMatch(/sk-test/);
  expect(result.stderr).toMatch(/^keybroker: [^\n]+\n$/);
  expect(result.stderr).toMatch(text);
}

describe('durations outside what a store call or a cache can use', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['timeout "0s"', { timeout: '0s' }, /field "profiles\.default\.timeout" must be between 100ms and 10m/],
    [
      'timeout "99999999h" (a RangeError at the store call before)',
      { timeout: '99999999h' },
      /field "profiles\.default\.timeout" must be between 100ms and 10m/,
    ],
    [
      'refreshAfter "0s"',
      { cache: { backend: 'none', refreshAfter: '0s' } },
      /field "profiles\.default\.cache\.refreshAfter" must be between 1s and 365d/,
    ],
    [
      'refreshAfter "99999999h"',
      { cache: { backend: 'none', refreshAfter: '99999999h' } },
      /field "profiles\.default\.cache\.refreshAfter" must be between 1s and 365d/,
    ],
  ];
  for (const [what, profile, message] of cases) {
    it(`refuses ${what} in config, status and get, naming the file`, async () => {
      home.writeConfig(awsConfig(moto.endpoint, profile));
      for (const command of [['config'], ['status'], ['get']]) {
        const result = await run(command);
        expectConfigError(result, message);
        expect(result.stderr).toContain(home.configFile);
      }
    });
  }

  it('refuses the same through KEYBROKER_TIMEOUT, naming the variable', async () => {
    home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
    expectConfigError(
      await run(['get'], { KEYBROKER_TIMEOUT: '0s' }),
      /environment \(KEYBROKER_TIMEOUT\): field "timeout" must be between/,
    );
  });
});

describe('the file as a whole', () => {
  it('accepts a file that starts with a UTF-8 byte order mark (as Windows editors write it)', async () => {
    const key = 'sk-test-config-bom';
    const secret = await provision(key);
    fs.writeFileSync(home.configFile, `\ufeff${JSON.stringify(awsConfig(moto.endpoint, { secret, cache: { backend: 'none' } }))}`);
    expect(fs.readFileSync(home.configFile).subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(await run(['get'])).toMatchObject({ code: 0, stdout: key, stderr: '' });
    expect((await run(['config'])).code).toBe(0);
  });

  it('refuses null, an array or a number as the whole config, saying it must be an object', async () => {
    for (const text of ['null', '[]', '42']) {
      fs.writeFileSync(home.configFile, text);
      const result = await run(['get']);
      expectConfigError(result, /must hold a JSON object, not (null|an array|number)/);
      expect(result.stderr).not.toContain('undefined');
    }
  });

  it('accepts "$schema" per profile, as the README says (editors add it)', async () => {
    const key = 'sk-test-config-schema';
    const secret = await provision(key);
    const config = awsConfig(moto.endpoint, { secret, cache: { backend: 'none' } });
    (config.profiles.default as Record<string, unknown>)['$schema'] = 'https://example.com/keybroker.schema.json';
    home.writeConfig({ $schema: 'https://example.com/keybroker.schema.json', ...config });
    expect(await run(['get'])).toMatchObject({ code: 0, stdout: key, stderr: '' });
    const view = await run(['config']);
    expect(view.code).toBe(0);
    expect(view.stdout).not.toContain('$schema');
  });
});

describe('mistakes inside "store"', () => {
  it("are refused by config, status, get and doctor's configuration check, naming the field", async () => {
    home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }, { regio: 'x' }));
    for (const command of [['config'], ['status'], ['get']]) {
      expectConfigError(await run(command), /unknown field "regio" in profiles\.default\.store/);
    }
    const doctor = await runBinary(['doctor', '--json'], { env: home.env(), timeoutMs: 30_000 });
    const report = JSON.parse(doctor.stdout) as { checks: { id: string; verdict: string; finding: string }[] };
    expect(report.checks[0]).toMatchObject({ id: 'configuration', verdict: 'FAIL' });
    expect(report.checks[0]!.finding).toContain('unknown field "regio" in profiles.default.store');
    expect(doctor.code).toBe(3);
  });

  it('names a wrong value of a store field, and a nested field (vault auth)', async () => {
    home.writeConfig(awsConfig(moto.endpoint, {}, { region: 'Europe' }));
    expectConfigError(await run(['config']), /field "profiles\.default\.store\.region" must be an AWS region/);
    home.writeConfig({ profiles: { default: { store: { type: 'vault', auth: { method: 'token', role: 'x' } }, secret: 's' } } });
    expectConfigError(await run(['status']), /unknown field "role" in profiles\.default\.store\.auth/);
  });
});

describe('a stored expires_at naming a day that does not exist', () => {
  it('is refused with exit 8, not read as another day', async () => {
    home.writeConfig(awsConfig(moto.endpoint, { cache: { backend: 'none' } }));
    for (const expires of ['2027-02-30T00:00:00Z', '2027-13-01T00:00:00Z', '2027-01-01T24:30:00Z', '2027-04-31T12:00:00+02:00']) {
      const secret = await provision(JSON.stringify({ api_key: 'sk-test-config-bad-date', expires_at: expires }));
      const result = await run(['get'], { KEYBROKER_SECRET: secret });
      expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 8, stdout: '' });
      expect(result.stderr).toMatch(/"expires_at" of secret "[^"]+" is not an RFC 3339 time/);
    }
    const fine = await provision(JSON.stringify({ api_key: 'sk-test-config-leap-day', expires_at: '2028-02-29T00:00:00Z' }));
    expect(await run(['get'], { KEYBROKER_SECRET: fine })).toMatchObject({ code: 0, stdout: 'sk-test-config-leap-day' });
  });
});

describe('a uid with no passwd entry (containers, a directory service that is down)', () => {
  const uid = 54_321;
  let dir: string;
  beforeAll(() => {
    expect(process.getuid?.()).toBe(0); // the suite runs as root, so it can become a uid nobody named
    expect(spawnSync('getent', ['passwd', String(uid)]).status, 'the test uid must have no passwd entry').toBe(2);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-nopasswd-'));
    fs.chownSync(dir, uid, uid);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function runAs(env: NodeJS.ProcessEnv): Promise<RunResult> {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(awsConfig(moto.endpoint, { cache: { backend: 'none' } })));
    fs.chmodSync(path.join(dir, 'config.json'), 0o644);
    const base: NodeJS.ProcessEnv = {
      ...home.env(),
      HOME: dir,
      XDG_CONFIG_HOME: dir,
      XDG_CACHE_HOME: dir,
      KEYBROKER_CONFIG: path.join(dir, 'config.json'),
      KEYBROKER_MACHINE_CONFIG: path.join(dir, 'machine.json'),
    };
    delete base['USER'];
    delete base['LOGNAME'];
    return runBinary(['--reuid', String(uid), '--regid', String(uid), '--clear-groups', BINARY], {
      env: { ...base, ...env },
      command: 'setpriv',
    });
  }

  it('uses USER (or LOGNAME) for {user}', async () => {
    const key = 'sk-test-config-no-passwd';
    await moto.aws(['secretsmanager', 'create-secret', '--name', 'claude-code/keys/nopasswd-dev', '--secret-string', key]);
    expect(await runAs({ USER: 'nopasswd-dev' })).toMatchObject({ code: 0, stdout: key, stderr: '' });
    expect(await runAs({ LOGNAME: 'nopasswd-dev' })).toMatchObject({ code: 0, stdout: key, stderr: '' });
  });

  it('without either, says what to set (exit 3), not "internal error"', async () => {
    const result = await runAs({});
    expectConfigError(result, /has no passwd entry and neither USER nor LOGNAME is set: set USER/);
  });
});

describe('config init flags, doctor --help and --json', () => {
  it('a missing --store is a usage error (2), like a missing --address', async () => {
    const out = path.join(home.dir, 'init.json');
    const noStore = await run(['config', 'init', '--output', out]);
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toMatch(/no store type given: pass --store aws\|azure\|gcp\|vault/);
    expect((await run(['config', 'init', '--store', 'nosuch', '--output', out])).code).toBe(2);
    expect((await run(['config', 'init', '--store', 'vault', '--output', out])).code).toBe(2);
  });

  it('doctor --json gives every check a details object, possibly empty', async () => {
    home.writeConfig(awsConfig('http://127.0.0.1:1', { cache: { backend: 'none' }, timeout: '500ms' }));
    const doctor = await runBinary(['doctor', '--json'], {
      env: home.env({ CLAUDE_CONFIG_DIR: path.join(home.dir, 'claude') }),
      timeoutMs: 30_000,
    });
    const report = JSON.parse(doctor.stdout) as { checks: { id: string; details?: unknown }[] };
    expect(report.checks.length).toBeGreaterThan(5);
    for (const check of report.checks) expect(check.details, check.id).toBeTypeOf('object');
  });
});
