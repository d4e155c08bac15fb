// The cache is bound to the user it was read for (the built binary, run as a uid with no passwd
// entry, as in a container): "user": "os" caches under the resolved secret name, a user that
// cannot be told is exit 3 before any cache is read, and a relative cache folder (no HOME, no
// passwd entry: it would be resolved in the repository Claude Code runs in) is never read.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMoto, AWS_TEST_CREDENTIALS, type Moto } from '../support/moto.ts';
import { BINARY, runBinary, type RunResult } from '../support/binary.ts';
import { awsConfig } from '../support/e2e-home.ts';
import { cacheAccount } from '../../src/cache/account.ts';
import { parseConfigText, resolveProfile, type Profile } from '../../src/config/config.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { sha256Hex } from '../../src/kernel/sha256.ts';

/** A uid nobody named (config-errors.test.ts uses 54,321). */
const UID = 54_323;
const KEYS = { alice: 'sk-test-account-alice', carol: 'sk-test-account-carol' };

let moto: Moto;
let dir: string;
beforeAll(async () => {
  expect(process.getuid?.()).toBe(0); // the suite runs as root, so it can become a uid nobody named
  expect(spawnSync('getent', ['passwd', String(UID)]).status, 'the test uid must have no passwd entry').toBe(2);
  moto = await startMoto();
  for (const [user, key] of Object.entries(KEYS)) {
    await moto.aws(['secretsmanager', 'create-secret', '--name', `claude-code/keys/${user}`, '--secret-string', key]);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-account-'));
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify(awsConfig(moto.endpoint, { cache: { backend: 'file', refreshAfter: '1h' } })),
  );
  fs.chmodSync(path.join(dir, 'config.json'), 0o644);
  fs.chownSync(dir, UID, UID);
});
afterAll(async () => {
  await moto?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The environment of a helper run with no passwd entry and nothing but `extra` to say who it is. */
function bareEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // The AWS SDK asks the OS for a home folder when HOME is unset (and fails without a passwd entry);
  // HOMEDRIVE + HOMEPATH is its own fallback, which keybroker does not read.
  const aws = {
    AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
    HOMEDRIVE: '',
    HOMEPATH: dir,
  };
  return {
    PATH: process.env['PATH'],
    ...AWS_TEST_CREDENTIALS,
    ...aws,
    KEYBROKER_CONFIG: path.join(dir, 'config.json'),
    KEYBROKER_MACHINE_CONFIG: path.join(dir, 'machine.json'),
    ...extra,
  };
}
function runAs(env: NodeJS.ProcessEnv, cwd = '/'): Promise<RunResult> {
  return runBinary(['--reuid', String(UID), '--regid', String(UID), '--clear-groups', BINARY, 'get'], { env, cwd, command: 'setpriv' });
}

describe('"user": "os" with no passwd entry', () => {
  const env = (extra: NodeJS.ProcessEnv) =>
    bareEnv({ HOME: dir, KEYBROKER_CACHE_DIR: path.join(dir, 'cache'), KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'), ...extra });

  it('USER=alice, then USER=carol: each is served their own key; with no user at all, exit 3 and no key', async () => {
    expect(await runAs(env({ USER: 'alice' }))).toMatchObject({ code: 0, stdout: KEYS.alice, stderr: '' });
    expect(await runAs(env({ USER: 'carol' }))).toMatchObject({ code: 0, stdout: KEYS.carol, stderr: '' });
    // Both are cached (and fresh for an hour); neither may answer for a user nobody can name.
    expect(await runAs(env({ USER: 'alice' }))).toMatchObject({ code: 0, stdout: KEYS.alice });
    const nobody = await runAs(env({}));
    expect(nobody).toMatchObject({ code: 3, stdout: '' });
    expect(nobody.stderr).toMatch(
      /^keybroker: cannot tell your OS login name: .* no passwd entry and neither USER nor LOGNAME is set: set USER/,
    );
  });
});

/** The profile the binary will use, read without the trust check (the file belongs to the test's other user, not to root). */
function profileOf(env: NodeJS.ProcessEnv): Profile {
  const file = env['KEYBROKER_CONFIG']!;
  return resolveProfile([{ source: file, role: 'user', data: parseConfigText(fs.readFileSync(file, 'utf8'), file) }], undefined).profile;
}

describe('no HOME and no passwd entry: the cache folder would be relative', () => {
  /** The account names a key is looked up under, this version's and the one before (which hashed the template). */
  function accountsOf(profile: Profile, user: string): string[] {
    const template = JSON.stringify([profile.store, profile.secret, profile.field, profile.user]);
    return [cacheAccount(profile, () => user), `${profile.name}:${sha256Hex(template).slice(0, 12)}`];
  }

  it('a repository that ships .cache/keybroker/keys/<hash>.json chooses no key: the store is read', async () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-account-repo-'));
    try {
      const env = bareEnv({ USER: 'carol' });
      const keys = path.join(repo, '.cache', 'keybroker', 'keys');
      fs.mkdirSync(keys, { recursive: true, mode: 0o700 });
      const planted = serializeEntry({
        key: 'sk-test-account-planted',
        version: 'planted',
        secret: 'claude-code/keys/carol',
        fetchedAt: Date.now(),
      });
      for (const account of accountsOf(profileOf(env), 'carol')) {
        fs.writeFileSync(path.join(keys, `${sha256Hex(account).slice(0, 24)}.json`), planted, { mode: 0o600 });
      }
      spawnSync('chown', ['-R', `${UID}:${UID}`, repo]);
      const result = await runAs(env, repo);
      expect(result, result.stderr).toMatchObject({ code: 0, stdout: KEYS.carol });
      expect(result.stderr).toMatch(/\.cache\/keybroker\/keys is not an absolute path/);
      expect(result.stderr).not.toMatch(/sk-test/);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });
});
