// `npm run demo`: keybroker's main job on an embedded default that needs no cloud account. A
// local AWS emulator (moto) is the company's secrets store; each step is shown with its output.
// Keys are shown by fingerprint only. Everything it starts is stopped at the end.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { fingerprint } from '../src/key-value.ts';
import { freePort, startProcess, waitForPort, type Started } from '../test/support/processes.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', process.platform === 'win32' ? 'keybroker.exe' : 'keybroker');
const REFRESH_AFTER = '2s';
// moto accepts any credentials; these never leave this machine.
const DEMO_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'demo', AWS_SECRET_ACCESS_KEY: 'demo', AWS_REGION: 'us-east-1' };

interface Demo {
  endpoint: string;
  secret: string;
  env: NodeJS.ProcessEnv;
  admin: SecretsManagerClient;
  keys: string[];
}

/** The steps, in order; each prints what it does and what came out. */
const steps: { title: string; run(demo: Demo): Promise<void> }[] = [
  {
    title: 'An admin provisions the developer\'s key in the store',
    async run(demo) {
      demo.keys.push(newKey());
      await demo.admin.send(new CreateSecretCommand({ Name: demo.secret, SecretString: demo.keys[0] }));
      show(`secret "${demo.secret}" created, key ${fingerprint(demo.keys[0]!)}`);
    },
  },
  {
    title: 'keybroker get: nothing cached yet, so it reads the store',
    run: async (demo) => get(demo, demo.keys[0]!),
  },
  {
    title: 'keybroker get again: served from the cache, no store SDK loaded',
    run: async (demo) => get(demo, demo.keys[0]!),
  },
  {
    title: 'An admin rotates the key: a new version becomes AWSCURRENT',
    async run(demo) {
      demo.keys.push(newKey());
      await demo.admin.send(new PutSecretValueCommand({ SecretId: demo.secret, SecretString: demo.keys[1] }));
      show(`new version written, key ${fingerprint(demo.keys[1]!)}`);
    },
  },
  {
    title: `keybroker get right after the rotation: the cached key is still fresh (refreshAfter ${REFRESH_AFTER})`,
    run: async (demo) => get(demo, demo.keys[0]!),
  },
  {
    title: `keybroker get after the refresh interval: the new key from the store`,
    async run(demo) {
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      await get(demo, demo.keys[1]!);
    },
  },
];

function newKey(): string {
  return `sk-test-demo-${randomBytes(16).toString('hex')}`;
}

function show(line: string): void {
  console.log(`    ${line}`);
}

/** Runs `keybroker get --verbose` as Claude Code would and shows what it did, never the key. */
async function get(demo: Demo, expected: string): Promise<void> {
  console.log('  $ keybroker get --verbose');
  const started = performance.now();
  const result = spawnSync(binary, ['get', '--verbose'], { env: demo.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = performance.now() - started;
  for (const line of result.stderr.split('\n').filter(Boolean)) show(`stderr: ${line}`);
  const verdict = result.stdout === expected ? 'the expected key' : result.stdout ? 'NOT the expected key' : 'nothing';
  show(`exit ${result.status}, stdout: ${result.stdout ? fingerprint(result.stdout) : '(empty)'} (${verdict}), ${ms.toFixed(0)} ms`);
  if (result.status !== 0 || result.stdout !== expected) throw new Error('the demo step did not give the expected key');
}

function buildIfNeeded(): void {
  const built = fs.existsSync(binary) ? fs.statSync(binary).mtimeMs : 0;
  const sources = ['src', 'providers', 'bin'].flatMap((dir) =>
    (fs.readdirSync(path.join(root, dir), { recursive: true }) as string[]).map((name) => path.join(root, dir, name)),
  ).filter((file) => file !== import.meta.filename);
  if (built && sources.every((file) => fs.statSync(file).mtimeMs <= built)) return;
  // As in the tests: the caller says the binary is current (e.g. a test run that built it).
  if (built && process.env['KEYBROKER_SKIP_BUILD'] === '1') return;
  console.log('Building dist/keybroker (npm run build:binary)...');
  execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

function requireMoto(): void {
  if (spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0) return;
  console.error("demo: moto_server (the local AWS emulator) is not installed: run 'pip install \"moto[server]\"' and npm run demo again");
  process.exit(2);
}

async function main(): Promise<void> {
  requireMoto();
  buildIfNeeded();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keybroker-demo-'));
  let moto: Started | undefined;
  let failed = false;
  try {
    const port = await freePort();
    moto = startProcess('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { env: { ...process.env, ...DEMO_CREDENTIALS } });
    await waitForPort(port);
    const endpoint = `http://127.0.0.1:${port}`;
    const config = {
      profiles: {
        demo: {
          store: { type: 'aws', region: 'us-east-1', endpoint },
          secret: 'claude-code/keys/{user}',
          user: 'os',
          // auto: the OS keychain when there is one; otherwise it says so and uses a private file.
          cache: { backend: 'auto', fallback: 'file', refreshAfter: REFRESH_AFTER },
        },
      },
      defaultProfile: 'demo',
    };
    const configFile = path.join(dir, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...DEMO_CREDENTIALS,
      AWS_PROFILE: undefined,
      AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
      KEYBROKER_CONFIG: configFile,
      KEYBROKER_MACHINE_CONFIG: path.join(dir, 'no-machine-config.json'),
      KEYBROKER_CACHE_DIR: path.join(dir, 'cache'),
      KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'),
      KEYBROKER_PROFILE: undefined,
      KEYBROKER_DEBUG: undefined,
    };
    const demo: Demo = {
      endpoint,
      secret: `claude-code/keys/${os.userInfo().username}`,
      env,
      admin: new SecretsManagerClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } }),
      keys: [],
    };
    console.log(`keybroker demo: store = moto at ${endpoint}, config = ${configFile}`);
    console.log(JSON.stringify(config.profiles.demo).replace(/^/, '    profile "demo": '));
    for (const [index, step] of steps.entries()) {
      console.log(`\n${index + 1}. ${step.title}`);
      await step.run(demo);
    }
    await forgetKeychainItem(env);
    console.log('\nDone: keybroker read, cached and refreshed a rotated key. Claude Code runs it as its apiKeyHelper (see README).');
  } catch (error) {
    failed = true;
    console.error(`\ndemo failed: ${(error as Error).message}`);
  } finally {
    await moto?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Exit now: a keychain call that never returned must not keep the demo alive.
  process.exit(failed ? 1 : 0);
}

/** Where a real keychain was used, the demo's entry is removed again (bounded: a locked keychain may not answer). */
async function forgetKeychainItem(env: NodeJS.ProcessEnv): Promise<void> {
  const { loadConfig } = await import('../src/config.ts');
  const { cacheAccount } = await import('../src/broker.ts');
  const { keychainCache } = await import('../src/cache/keychain.ts');
  try {
    await keychainCache({ env, timeoutMs: 2_000 }).remove(cacheAccount(loadConfig({ env }).profile));
  } catch {
    // No keychain here: the demo cached in its temp folder, which is removed.
  }
}

await main();
