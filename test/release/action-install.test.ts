// The GitHub Action's script (action/github-env.sh → action/install.sh) and the GitLab template,
// run here as a runner would: GITHUB_ENV, GITHUB_PATH, RUNNER_OS/RUNNER_ARCH and RUNNER_TEMP set to
// scratch files and values, a release folder made from dist/keybroker (its archive and SHA256SUMS)
// served as file://, and moto as the store. A tampered archive never runs.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BINARY } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { runTag } from '../support/run-tag.ts';

const root = path.resolve(import.meta.dirname, '../..');
const KEY = 'sk-test-action-0123456789abcdef';
const GATEWAY = 'https://llm-gateway.example.com';
const VERSION = '0.1.0';
const ARCHIVE = `keybroker-${VERSION}-linux-x64.tar.gz`;
let scratch: string;
let moto: Moto;
let home: TestHome;

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** `<dir>/v<version>/` with `archive` (a tar.gz of a file named keybroker) and SHA256SUMS naming `sumOf`'s hash. */
function releaseFolder(name: string, keybroker: string, sums: 'own' | string = 'own'): string {
  const base = path.join(scratch, name);
  const folder = path.join(base, `v${VERSION}`);
  const stage = path.join(scratch, `${name}-stage`);
  fs.mkdirSync(folder, { recursive: true });
  fs.mkdirSync(stage, { recursive: true });
  fs.copyFileSync(keybroker, path.join(stage, 'keybroker'));
  fs.chmodSync(path.join(stage, 'keybroker'), 0o755);
  execFileSync('tar', ['-czf', path.join(folder, ARCHIVE), '-C', stage, 'keybroker']);
  const hash = sums === 'own' ? sha256(path.join(folder, ARCHIVE)) : sums;
  fs.writeFileSync(path.join(folder, 'SHA256SUMS'), `${'0'.repeat(64)}  keybroker-${VERSION}-darwin-arm64.tar.gz\n${hash}  ${ARCHIVE}\n`);
  return base;
}

/** A stand-in "keybroker" that leaves a mark if anything ever runs it. */
function plantedBinary(): { file: string; marker: string } {
  const marker = path.join(scratch, 'planted-binary-ran');
  const file = path.join(scratch, 'planted-keybroker');
  fs.writeFileSync(file, `#!/bin/sh\ntouch '${marker}'\n`, { mode: 0o755 });
  return { file, marker };
}

let good: string;
beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-action-'));
  good = releaseFolder('release', BINARY);
  moto = await startMoto();
  const valueFile = path.join(scratch, 'value');
  fs.writeFileSync(valueFile, KEY);
  await moto.aws(['secretsmanager', 'create-secret', '--name', 'ci/claude', '--secret-string', `file://${valueFile}`]);
  fs.rmSync(valueFile);
  home = makeTestHome(awsConfig(moto.endpoint, { secret: 'ci/claude', gateway: GATEWAY }));
});

afterAll(async () => {
  await moto?.stop();
  home?.remove();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/** A fresh runner: its temp folder and GITHUB_ENV/GITHUB_PATH files, and the script's environment. */
function runner(extra: NodeJS.ProcessEnv) {
  const dir = fs.mkdtempSync(path.join(scratch, 'runner-'));
  const files = { env: path.join(dir, 'github_env'), path: path.join(dir, 'github_path') };
  fs.writeFileSync(files.env, '');
  fs.writeFileSync(files.path, '');
  const { KEYBROKER_CONFIG: _config, ...homeEnv } = home.env();
  const env = {
    ...homeEnv,
    PATH: process.env['PATH'],
    RUNNER_OS: 'Linux',
    RUNNER_ARCH: 'X64',
    RUNNER_TEMP: path.join(dir, 'temp'),
    GITHUB_ACTIONS: 'true',
    GITHUB_ENV: files.env,
    GITHUB_PATH: files.path,
    KEYBROKER_INSTALL_VERSION: VERSION,
    KEYBROKER_ACTION_CONFIG: home.configFile,
    ...runTag(),
    ...extra,
  };
  fs.mkdirSync(env.RUNNER_TEMP);
  return { files, env, read: (file: string) => fs.readFileSync(file, 'utf8') };
}

function bash(args: string[], env: NodeJS.ProcessEnv) {
  const result = spawnSync('bash', args, { env, encoding: 'utf8', cwd: scratch, timeout: 120_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the GitHub Action', () => {
  it('installs the archive SHA256SUMS vouches for, puts keybroker on GITHUB_PATH, masks the key, and writes the gateway and key to GITHUB_ENV', () => {
    const { files, env, read } = runner({ KEYBROKER_INSTALL_URL: `file://${good}` });
    const result = bash([path.join(root, 'action/github-env.sh')], env);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(`::add-mask::${KEY}\n`);
    expect(result.stderr).not.toContain(KEY);
    expect(read(files.env)).toBe(`ANTHROPIC_BASE_URL=${GATEWAY}\nANTHROPIC_API_KEY=${KEY}\n`);
    const binDir = read(files.path).trim();
    expect(binDir.startsWith(env.RUNNER_TEMP)).toBe(true);
    expect(sha256(path.join(binDir, 'keybroker'))).toBe(sha256(BINARY));
  });

  it('refuses a tampered archive before anything in it runs: nothing on the PATH, nothing in GITHUB_ENV', () => {
    const planted = plantedBinary();
    const tampered = releaseFolder('tampered', planted.file, sha256(path.join(good, `v${VERSION}`, ARCHIVE)));
    const { files, env, read } = runner({ KEYBROKER_INSTALL_URL: `file://${tampered}` });
    const result = bash([path.join(root, 'action/github-env.sh')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${ARCHIVE} does not match SHA256SUMS`);
    expect(fs.existsSync(planted.marker)).toBe(false);
    expect([read(files.env), read(files.path), result.stdout]).toEqual(['', '', '']);
  });

  it('refuses an archive whose own SHA256SUMS agrees when the workflow pinned another sha256', () => {
    const planted = plantedBinary();
    const replaced = releaseFolder('replaced', planted.file);
    const { files, env, read } = runner({
      KEYBROKER_INSTALL_URL: `file://${replaced}`,
      KEYBROKER_INSTALL_SHA256: sha256(path.join(good, `v${VERSION}`, ARCHIVE)),
    });
    const result = bash([path.join(root, 'action/github-env.sh')], env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is not the archive the workflow pinned');
    expect(fs.existsSync(planted.marker)).toBe(false);
    expect(read(files.path)).toBe('');
  });

  it('refuses plain http from another host, and a version that is not one', () => {
    const http = bash(
      [path.join(root, 'action/github-env.sh')],
      runner({ KEYBROKER_INSTALL_URL: 'http://downloads.example.com/keybroker' }).env,
    );
    expect(http).toMatchObject({ code: 1, stdout: '' });
    expect(http.stderr).toContain('refusing to download over plain http from another host');
    const version = bash(
      [path.join(root, 'action/github-env.sh')],
      runner({ KEYBROKER_INSTALL_URL: `file://${good}`, KEYBROKER_INSTALL_VERSION: '0.1.0; touch x' }).env,
    );
    expect(version.code).toBe(1);
    expect(version.stderr).toContain('the version must look like 1.2.3');
  });

  it('action.yml passes every input to the script through env:, none inside the script', () => {
    const action = parse(fs.readFileSync(path.join(root, 'action.yml'), 'utf8')) as {
      runs: { using: string; steps: Array<{ run: string; env: Record<string, string> }> };
    };
    expect(action.runs.using).toBe('composite');
    const [step] = action.runs.steps;
    expect(step!.run).toBe('bash "$GITHUB_ACTION_PATH/action/github-env.sh"');
    expect(Object.values(step!.env).every((value) => /^\$\{\{ inputs\.[\w-]+ \}\}$/.test(value))).toBe(true);
  });
});

describe('the GitLab template', () => {
  const template = parse(fs.readFileSync(path.join(root, 'ci/gitlab/keybroker.gitlab-ci.yml'), 'utf8')) as Record<
    string,
    { before_script: string[] }
  >;
  const beforeScript = template['.keybroker']!.before_script;

  /** The job's before_script and a script line that saves what the job sees, as GitLab runs them (one bash). */
  function job(extra: NodeJS.ProcessEnv, trace = false) {
    const { env } = runner({
      KEYBROKER_INSTALL_URL: `file://${good}`,
      GITLAB_CI: 'true',
      GITHUB_ACTIONS: '',
      GITHUB_ENV: '',
      GITHUB_PATH: '',
      KEYBROKER_CONFIG: home.configFile,
      ...extra,
    });
    const seen = path.join(env.RUNNER_TEMP, 'seen');
    const script = [
      ...(trace ? ['set -x'] : []),
      ...beforeScript,
      `printf '%s\\n%s' "$ANTHROPIC_BASE_URL" "$ANTHROPIC_API_KEY" > '${seen}'`,
    ].join('\n');
    return { result: bash(['-c', script], { ...env, RUNNER_OS: '', RUNNER_ARCH: '' }), seen };
  }

  it('runs action/install.sh byte for byte, then gives the job ANTHROPIC_BASE_URL and the key', () => {
    expect(beforeScript[0]).toBe(fs.readFileSync(path.join(root, 'action/install.sh'), 'utf8'));
    const { result, seen } = job({});
    expect(result.code, result.stderr).toBe(0);
    expect(fs.readFileSync(seen, 'utf8')).toBe(`${GATEWAY}\n${KEY}`);
    expect(result.stdout + result.stderr).not.toContain(KEY);
  });

  it.each(['CI_DEBUG_TRACE', 'CI_DEBUG_SERVICES'])(
    '%s=true (the runner traces every line): the job fails and the key is in none of its output',
    (variable) => {
      const { result, seen } = job({ [variable]: 'true' }, true);
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).not.toContain(KEY);
      expect(result.stderr).toContain(`${variable}=true turns GitLab's debug trace on`);
      expect(fs.existsSync(seen)).toBe(false);
    },
  );
});
