// The npm packages (release/npm.ts) installed the way a developer installs them: the linux-x64
// platform package packed from dist/keybroker and the main package, `npm install -g` offline into a
// scratch prefix; then `keybroker` from that PATH prints its version, gets the key from moto, and
// `setup` writes the platform binary's own real path into apiKeyHelper (never the JS launcher).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildNpmPackages, NPM_TARGETS, type NpmBuild } from '../../release/npm.ts';
import { BINARY, runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { startMoto, type Moto } from '../support/moto.ts';

const KEY = 'sk-test-npm-install-0123456789';
const version = (JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string })
  .version;
let scratch: string;
let built: NpmBuild;
let prefix: string;
let moto: Moto;
let home: TestHome;

/** package.json of a packed tarball. */
function manifestOf(tgz: string): Record<string, unknown> {
  return JSON.parse(execFileSync('tar', ['-xOzf', tgz, 'package/package.json'], { encoding: 'utf8' })) as Record<string, unknown>;
}

beforeAll(async () => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-npm-'));
  built = buildNpmPackages({ binaries: { 'linux-x64': BINARY }, version, out: path.join(scratch, 'npm') });
  prefix = path.join(scratch, 'prefix');
  execFileSync(
    'npm',
    [
      'install',
      '-g',
      '--prefix',
      prefix,
      '--cache',
      path.join(scratch, 'cache'),
      '--offline',
      '--no-audit',
      '--no-fund',
      built.main,
      built.platforms['linux-x64']!,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  moto = await startMoto();
  const valueFile = path.join(scratch, 'value');
  fs.writeFileSync(valueFile, KEY);
  await moto.aws(['secretsmanager', 'create-secret', '--name', 'npm/dev', '--secret-string', `file://${valueFile}`]);
  fs.rmSync(valueFile);
  home = makeTestHome(awsConfig(moto.endpoint, { secret: 'npm/dev', cache: { backend: 'none' } }));
});

afterAll(async () => {
  await moto?.stop();
  home?.remove();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/** `keybroker` as the shell finds it on the PATH the install set up. */
function keybroker(args: string[]) {
  const env = home.env({
    PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env['PATH']}`,
    CLAUDE_CONFIG_DIR: path.join(home.dir, '.claude'),
  });
  return runBinary(args, { env, command: 'keybroker' });
}

describe('npm packages', () => {
  it('a platform package holds the binary with os and cpu set; the main package depends on every platform package at exactly this version; none has an install script', () => {
    const platform = manifestOf(built.platforms['linux-x64']!);
    expect(platform).toMatchObject({ name: '@keybroker/linux-x64', version, os: ['linux'], cpu: ['x64'] });
    const files = execFileSync('tar', ['-tvzf', built.platforms['linux-x64']!], { encoding: 'utf8' });
    expect(files).toMatch(/^-rwxr-xr-x .* package\/bin\/keybroker$/m);
    const main = manifestOf(built.main);
    expect(main['optionalDependencies']).toEqual(Object.fromEntries(Object.values(NPM_TARGETS).map(({ name }) => [name, version])));
    expect(main['bin']).toEqual({ keybroker: 'bin/keybroker.cjs' });
    for (const manifest of [platform, main]) {
      expect(Object.keys((manifest['scripts'] as object | undefined) ?? {})).toEqual([]);
      expect(manifest['gypfile']).toBeUndefined();
    }
    for (const tgz of [built.main, built.platforms['linux-x64']!])
      expect(execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' })).not.toMatch(/binding\.gyp/);
  });

  it('after npm install -g, keybroker on the PATH prints its version and gets the key from the store', async () => {
    const versionRun = await keybroker(['--version']);
    expect(versionRun).toMatchObject({ code: 0, stdout: `keybroker ${version}\n` });
    const get = await keybroker(['get']);
    expect(get.stderr).toBe('');
    expect(get).toMatchObject({ code: 0, stdout: KEY });
  });

  it("setup through the launcher writes the platform binary's real absolute path into apiKeyHelper, and that command prints the key", async () => {
    const setup = await keybroker(['setup', '--write', '--gateway', 'https://llm-gateway.example.com']);
    expect(setup.stderr).not.toContain(KEY);
    expect(setup.code, setup.stderr).toBe(0);
    const settings = JSON.parse(fs.readFileSync(path.join(home.dir, '.claude/settings.json'), 'utf8')) as { apiKeyHelper: string };
    const program = /^'([^']+)'|^(\S+)/.exec(settings.apiKeyHelper)!;
    const written = program[1] ?? program[2]!;
    const platformBinary = fs.realpathSync(path.join(prefix, 'lib/node_modules/@keybroker/linux-x64/bin/keybroker'));
    expect(written).toBe(platformBinary);
    expect(settings.apiKeyHelper).not.toContain('keybroker.cjs');
    // As Claude Code runs it: through /bin/sh, its own environment, no Node on the PATH needed.
    const helper = await runBinary(['-c', settings.apiKeyHelper], { env: home.env({ PATH: '/usr/bin:/bin' }), command: '/bin/sh' });
    expect(helper).toMatchObject({ code: 0, stdout: KEY });
  });
});
