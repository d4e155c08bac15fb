// status, config (+ init), cache clear, login and --help, through the built binary.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { awsProfile, KEY, SECRET, startMachine, type Machine } from './setup.ts';
import { BINARY } from '../support/binary.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { commands } from '../../src/cli/commands/index.ts';
import * as v from 'valibot';

let machine: Machine;
let storeProxy: FaultProxy;
beforeAll(async () => {
  machine = await startMachine();
  storeProxy = await startFaultProxy(machine.moto.port);
  machine.writeConfig(awsProfile(storeProxy.url()));
});
afterAll(async () => {
  await storeProxy?.stop();
  await machine?.stop();
});

describe('status', () => {
  test('shows the cached key by fingerprint, version, age and next refresh, without touching the network', async () => {
    await machine.run(['cache', 'clear']);
    const empty = await machine.run(['status']);
    expect(empty.stdout).toMatch(/cached key\s+none/);
    const got = await machine.run(['get']);
    expect(got.code, got.stderr).toBe(0);

    storeProxy.set({ kind: 'blackhole' });
    try {
      const before = storeProxy.connections();
      const text = await machine.run(['status']);
      const json = await machine.run(['status', '--json']);
      expect(storeProxy.connections()).toBe(before);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^profile\s+default$/m);
      expect(text.stdout).toMatch(new RegExp(`^secret\\s+${SECRET}$`, 'm'));
      expect(text.stdout).toMatch(/^cache\s+file$/m);
      expect(text.stdout).toContain(`${fingerprint(KEY)} (fresh)`);
      expect(text.stdout).toMatch(/^next refresh\s+\S+ \(in 2\dm/m);
      const status = JSON.parse(json.stdout);
      expect(status.cached.fingerprint).toBe(fingerprint(KEY));
      expect(status.cached.freshness).toBe('fresh');
      expect(status.cacheBackend).toEqual({ configured: 'file', inUse: 'file' });
      expect(text.stdout + json.stdout).not.toContain(KEY);
    } finally {
      storeProxy.set({ kind: 'pass' });
    }
  });

  test('--refresh picks up a rotated key at once', async () => {
    const rotated = 'sk-test-doctor-rotated-00112233445566778899';
    await machine.moto.aws([
      'secretsmanager',
      'put-secret-value',
      '--secret-id',
      SECRET,
      '--secret-string',
      JSON.stringify({ api_key: rotated }),
    ]);
    try {
      const plain = JSON.parse((await machine.run(['status', '--json'])).stdout);
      expect(plain.cached.fingerprint).toBe(fingerprint(KEY));
      const refreshed = JSON.parse((await machine.run(['status', '--json', '--refresh'])).stdout);
      expect(refreshed.cached.fingerprint).toBe(fingerprint(rotated));
    } finally {
      await machine.moto.aws([
        'secretsmanager',
        'put-secret-value',
        '--secret-id',
        SECRET,
        '--secret-string',
        JSON.stringify({ api_key: KEY }),
      ]);
      await machine.run(['cache', 'clear']);
    }
  });
});

describe('cache clear', () => {
  test("removes the profile's cached key, so the next get reads the store", async () => {
    await machine.run(['get']);
    const cleared = await machine.run(['cache', 'clear']);
    expect(cleared.stdout).toBe('profile "default": removed the cached key from the file cache\n');
    expect((await machine.run(['cache', 'clear'])).stdout).toBe('profile "default": no cached key\n');
    expect((await machine.run(['status'])).stdout).toMatch(/cached key\s+none/);
    const wrong = await machine.run(['cache', 'flush']);
    expect(wrong.code).toBe(2);
  });
});

describe('config', () => {
  test('shows each effective value with where it came from', async () => {
    const result = await machine.run(['config'], { KEYBROKER_REFRESH_AFTER: '10m' });
    const userFile = path.join(machine.home, '.config', 'keybroker', 'config.json');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^store\\.type\\s+"aws"\\s+\\(${userFile}\\)$`, 'm'));
    expect(result.stdout).toMatch(/^cache\.refreshAfter\s+"10m"\s+\(KEYBROKER_REFRESH_AFTER\)$/m);
    expect(result.stdout).toMatch(/^timeout\s+"5s"\s+\(default\)$/m);
    expect(result.stdout).toMatch(/machine-wide\s+\S+machine-config\.json\s+\(absent\)/);
    const json = JSON.parse((await machine.run(['config', '--json'])).stdout);
    expect(json.values.find((row: { field: string }) => row.field === 'secret')).toEqual({
      field: 'secret',
      value: SECRET,
      source: userFile,
      why: 'latest',
      overrides: [],
    });
  });

  test('without any configuration: shows the paths searched and exits 3', async () => {
    const result = await machine.run(['config'], { KEYBROKER_CONFIG: undefined, XDG_CONFIG_HOME: path.join(machine.home, 'empty') });
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/^files \(lowest precedence first/);
    expect(result.stdout).toContain(`${path.join(machine.home, 'empty', 'keybroker', 'config.json')}  (absent)`);
    expect(result.stderr).toMatch(/no keybroker configuration found/);
    const doctor = await machine.doctorJson([], { XDG_CONFIG_HOME: path.join(machine.home, 'empty') });
    expect(doctor.result.code).toBe(3);
  });

  test('init writes a commented file that keybroker loads, and does not overwrite it', async () => {
    const file = path.join(machine.home, 'init', 'config.json');
    const written = await machine.run([
      'config',
      'init',
      '--store',
      'aws',
      '--region',
      'eu-west-1',
      '--gateway',
      'https://llm.example.com',
      '--output',
      file,
    ]);
    expect(written.code, written.stderr).toBe(0);
    const data = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(data.profiles.default.store).toEqual({ type: 'aws', region: 'eu-west-1' });
    expect(data.profiles.default.$comment.join('\n')).toMatch(/store\.region: the AWS region/);
    const shown = await machine.run(['config', '--config', file]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^gateway\s+"https:\/\/llm\.example\.com"/m);
    const again = await machine.run(['config', 'init', '--store', 'aws', '--region', 'eu-west-1', '--output', file]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists.*--force/);
    const missing = await machine.run(['config', 'init', '--store', 'azure', '--output', path.join(machine.home, 'init', 'b.json')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/needs vaultUrl.*--vault-url/);
  });

  test.each([
    ['aws', ['--region', 'eu-west-1', '--aws-profile', 'dev-sso']],
    ['azure', ['--vault-url', 'https://team-keys.vault.azure.net']],
    ['gcp', ['--project', 'acme-llm-keys']],
    ['vault', ['--address', 'https://vault.example.com:8200', '--mount', 'kv', '--vault-auth', 'oidc']],
  ] as const)('init writes a %s store the provider itself accepts', async (type, flags) => {
    const file = path.join(machine.home, 'init', `${type}.json`);
    const result = await machine.run(['config', 'init', '--store', type, ...flags, '--output', file]);
    expect(result.code, result.stderr).toBe(0);
    const store = JSON.parse(fs.readFileSync(file, 'utf8')).profiles.default.store;
    const { storeSchema } = (await import(`../../providers/${type}.ts`)) as { storeSchema: v.GenericSchema };
    expect(v.safeParse(storeSchema, store).issues).toBeUndefined();
  });
});

describe('login', () => {
  test('logged in: says as whom and caches the key', async () => {
    await machine.run(['cache', 'clear']);
    const result = await machine.run(['login']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/already logged in to AWS Secrets Manager .* as arn:aws/);
    expect(result.stderr).toContain(`cached key ${fingerprint(KEY)}`);
    expect((await machine.run(['status'])).stdout).toContain(fingerprint(KEY));
  });

  test('a cache that cannot keep the key: never says "cached", exits 9 as its help says', async () => {
    // The cache folder lies below a regular file: every write fails (ENOTDIR), whoever runs it.
    const blocker = path.join(machine.home, 'not-a-folder');
    fs.writeFileSync(blocker, '');
    const result = await machine.run(['login'], { KEYBROKER_CACHE_DIR: path.join(blocker, 'keybroker') });
    expect(result.stderr).not.toMatch(/cached key/);
    expect(result.stderr).toMatch(new RegExp(`read key ${fingerprint(KEY)} .* but it was not cached in the file cache`));
    expect(result.code).toBe(9);
    expect(result.stdout).toBe('');
    expect((await machine.run(['login', '--help'])).stdout).toMatch(/9 when the key was read but the cache did not\s+keep it/);
  });

  test('not logged in: prints the exact login command and exits 4', async () => {
    const env = {
      ...machine.env,
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
      AWS_CONFIG_FILE: '/nonexistent/c',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/d',
      AWS_PROFILE: 'dev-sso',
    };
    const result = await machine.run(['login'], {}, { replaceEnv: env });
    expect(result.code).toBe(4);
    expect(result.stdout).toBe('aws sso login --profile dev-sso\n');
    expect(result.stderr).toMatch(/run the command above, then 'keybroker login' again/);
  });
});

describe('--help', () => {
  test.each(commands.map((command) => command.name))('%s --help shows usage and examples', async (name) => {
    const result = await machine.run([name, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: keybroker/);
    expect(result.stdout).toMatch(/\nExamples:\n {2}keybroker/);
  });

  test('--verbose adds a trace on stderr with the key masked', async () => {
    const result = await machine.run(['status', '--refresh', '--verbose']);
    expect(result.stderr).toMatch(/keybroker: debug: /);
    expect(result.stdout + result.stderr).not.toContain(KEY);
  });
});

describe('config init on a terminal', () => {
  test('asks for what the flags did not give, in a real TTY (tmux)', async () => {
    const file = path.join(machine.home, 'init', 'interactive.json');
    const session = `kb-init-${process.pid}`;
    const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
    const env = Object.entries({ ...machine.env, TERM: 'xterm' })
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${value}`);
    tmux(
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '150',
      '-y',
      '30',
      'env',
      '-i',
      ...env,
      'sh',
      '-c',
      `'${BINARY}' config init --output '${file}'; echo "exit=$?"; sleep 30`,
    );
    const screen = () => tmux('capture-pane', '-p', '-J', '-t', session);
    const waitFor = async (pattern: RegExp) => {
      for (let tries = 0; tries < 100; tries++) {
        if (pattern.test(screen())) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`never saw ${pattern} on:\n${screen()}`);
    };
    try {
      for (const [prompt, answer] of [
        [/store \(aws, azure, gcp, vault\) \[aws\]: $/m, 'azure'],
        [/Key Vault URL .*: $/m, 'https://team-keys.vault.azure.net'],
        [/secret name template \[claude-code\/keys\/\{user\}\]: $/m, ''],
        [/LLM gateway URL \(empty: none\): $/m, 'https://llm.example.com'],
        // This machine has no keychain (no session bus): init says so and offers the private file.
        [/cache the key in a private file \(0600\) instead\? \(yes\/no\) \[yes\]: $/m, ''],
      ] as const) {
        await waitFor(prompt);
        tmux('send-keys', '-t', session, answer, 'Enter');
      }
      await waitFor(/exit=0/);
    } finally {
      tmux('kill-session', '-t', session);
    }
    const profile = JSON.parse(fs.readFileSync(file, 'utf8')).profiles.default;
    expect(profile.store).toEqual({ type: 'azure', vaultUrl: 'https://team-keys.vault.azure.net' });
    expect(profile.secret).toBe('claude-code/keys/{user}');
    expect(profile.gateway).toBe('https://llm.example.com');
    expect(profile.cache).toMatchObject({ backend: 'auto', fallback: 'file' });
  });
});
