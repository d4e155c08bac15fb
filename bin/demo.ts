// `npm run demo`: keybroker's whole job on an embedded default that needs no cloud account. A local
// AWS emulator (moto) is the company's secrets store and a local LiteLLM-style proxy is the LLM
// gateway (its key API mints and rotates keys, its Anthropic API checks them). Every step runs the
// built binary and shows what came out; keys are shown by fingerprint only. Everything the demo
// starts is stopped at the end, on failure and on Ctrl-C.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fingerprint } from '../src/secret/value.ts';
import { recommendedTtlMs } from '../src/claude/setup.ts';
import { minimumSafeGraceMs } from '../src/admin/rotate.ts';
import { startFakeLiteLlm, type FakeLiteLlm } from '../test/fakes/litellm.ts';
import { freePort, startProcess, waitForPort, type Started } from '../test/support/processes.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', process.platform === 'win32' ? 'keybroker.exe' : 'keybroker');
// Short enough to watch a rotation land, long enough that the steps before it finish inside it.
const REFRESH_AFTER_MS = 5_000;
// What `keybroker setup` gives Claude Code for this refresh interval; the children run with it.
const CALLER_TTL_MS = recommendedTtlMs(REFRESH_AFTER_MS);
// The shortest grace that no developer notices: refresh interval + 2 × Claude Code's TTL.
const GRACE_MS = minimumSafeGraceMs(REFRESH_AFTER_MS, CALLER_TTL_MS);
// moto accepts any credentials; these never leave this machine.
const DEMO_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'demo', AWS_SECRET_ACCESS_KEY: 'demo', AWS_REGION: 'us-east-1' };
// A child that has not answered in this long is stopped, so the demo never hangs.
const COMMAND_TIMEOUT_MS = 30_000;
// The clean-up's own `cache clear` gets less: the user is waiting to get their prompt back.
const CLEANUP_TIMEOUT_MS = 5_000;

interface Demo {
  dir: string;
  user: string;
  gateway: FakeLiteLlm;
  /** The developer's environment, as Claude Code runs the helper (no gateway admin key in it). */
  developerEnv: NodeJS.ProcessEnv;
  /** The admin's: the same store credentials plus the gateway's master key. */
  adminEnv: NodeJS.ProcessEnv;
  /** When the first key was read from the store into the cache (performance.now()). */
  cachedAt: number;
  /** When the admin rotated the key (performance.now()). */
  rotatedAt: number;
  /** The cached key was removed by the last step (else the clean-up removes it). */
  cleared: boolean;
}

interface Step {
  title: string;
  run(demo: Demo): Promise<void>;
}

/** The steps, in order; each prints the command it runs and what came out. */
const steps: Step[] = [
  {
    title: "Provision: the admin mints the developer's first key at the gateway's key API and stores it",
    async run(demo) {
      await keybroker(demo, ['admin', 'rotate', '--user', demo.user], { env: demo.adminEnv });
      show(`the gateway issued ${label(demo, issuedKeys(demo)[0]!)}; the store holds it as "claude-code/keys/${demo.user}"`);
    },
  },
  {
    title: 'The admin lists what the store holds, per developer (never a key)',
    run: async (demo) => void (await keybroker(demo, ['admin', 'list'], { env: demo.adminEnv })),
  },
  {
    title: 'Fetch: Claude Code runs `keybroker get` as its apiKeyHelper; nothing is cached, so it reads the store',
    async run(demo) {
      const result = await get(demo, 'store');
      demo.cachedAt = result.endedAt;
      expectKey(demo, result, 0);
    },
  },
  {
    title: 'Cached: the same call again is served from the cache, without loading any store SDK',
    async run(demo) {
      expectKey(demo, await get(demo, 'cache'), 0);
    },
  },
  {
    title: 'keybroker status shows the cache: backend, fingerprint, version, age, next refresh',
    run: async (demo) => void (await keybroker(demo, ['status'])),
  },
  {
    title: `Rotate: the gateway mints a new key, it is stored, then the old one stays valid for a grace of ${seconds(GRACE_MS)} (refreshAfter ${seconds(REFRESH_AFTER_MS)} + 2 × Claude Code's TTL ${seconds(CALLER_TTL_MS)}); the new key becomes the stored version`,
    async run(demo) {
      await keybroker(demo, ['admin', 'rotate', '--user', demo.user, '--grace', seconds(GRACE_MS)], { env: demo.adminEnv });
      demo.rotatedAt = performance.now();
      const [old, current] = issuedKeys(demo).slice(-2);
      show(`the gateway now accepts the new ${label(demo, current!)} and, until the grace ends, the old ${label(demo, old!)}`);
    },
  },
  {
    title: "Right after the rotation the developer's cached key is still fresh, and still accepted by the gateway: no 401",
    async run(demo) {
      const result = await get(demo);
      const served = issuedKeys(demo).indexOf(result.stdout);
      if (served === 0)
        show(
          `still the old key from the cache (read ${seconds(result.startedAt - demo.cachedAt)} ago, refreshAfter ${seconds(REFRESH_AFTER_MS)})`,
        );
      else show('already the new key: this machine was slow enough for the cached key to reach its refresh interval');
      if (served < 0) throw new Error('get printed a key the gateway never issued');
      await gatewayAnswers(demo, result.stdout, 200);
    },
  },
  {
    title: `After the refresh interval (${seconds(REFRESH_AFTER_MS)} since the key was cached) the developer's next get brings the new key`,
    async run(demo) {
      await waitUntil(demo.cachedAt + REFRESH_AFTER_MS + 100, 'the cached key reaches its refresh interval');
      expectKey(demo, await get(demo), 1);
    },
  },
  {
    title:
      "keybroker setup prints the Claude Code settings that make it call keybroker (written into the demo's own Claude config folder, not yours)",
    run: async (demo) => void (await keybroker(demo, ['setup', '--write'])),
  },
  {
    title: "keybroker doctor checks every layer: configuration, store, cache, Claude Code's settings and the gateway (ANTHROPIC_BASE_URL)",
    run: async (demo) => void (await keybroker(demo, ['doctor'])),
  },
  {
    title: 'When the grace period ends the gateway refuses the old key; the developer already uses the new one',
    async run(demo) {
      await waitUntil(demo.rotatedAt + GRACE_MS + 100, 'the grace period ends');
      const [old, current] = issuedKeys(demo).slice(-2);
      await gatewayAnswers(demo, old!, 401);
      await gatewayAnswers(demo, current!, 200);
      show('(with --now instead of a grace, key 1 would be refused at once: Claude Code then gets a 401, runs keybroker');
      show(' again within its TTL, and keybroker re-reads the store instead of serving the cache)');
    },
  },
  {
    title: "keybroker cache clear removes the demo's cached key (from the keychain too, when there is one)",
    async run(demo) {
      await keybroker(demo, ['cache', 'clear']);
      demo.cleared = true;
    },
  },
];

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  startedAt: number;
  endedAt: number;
}

/** The keybroker process running now, so that Ctrl-C can stop it too. */
let running: ChildProcess | undefined;

/** Runs the built binary, shows the command and its output (keys masked), and fails on a non-zero exit. */
async function keybroker(demo: Demo, args: string[], options: { env?: NodeJS.ProcessEnv; showStdout?: boolean } = {}): Promise<RunResult> {
  console.log(`   $ keybroker ${args.join(' ')}`);
  const result = await runBinary(args, options.env ?? demo.developerEnv, demo.dir);
  if (options.showStdout !== false) for (const line of lines(result.stdout)) show(guard(demo, line));
  for (const line of lines(result.stderr)) show(guard(demo, line));
  if (result.status !== 0) throw new Error(`keybroker ${args[0]} exited ${result.status}`);
  return result;
}

function runBinary(args: string[], env: NodeJS.ProcessEnv, cwd: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    // Async, not spawnSync: the gateway runs in this process and must keep answering.
    const child = spawn(binary, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    running = child;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      running = undefined;
      resolve({ status, stdout, stderr, startedAt, endedAt: performance.now() });
    });
  });
}

/** `keybroker get --verbose` as Claude Code runs it; shows the key's fingerprint, never the key. */
async function get(demo: Demo, from?: 'store' | 'cache'): Promise<RunResult> {
  const result = await keybroker(demo, ['get', '--verbose'], { showStdout: false });
  const known = issuedKeys(demo).includes(result.stdout);
  show(
    `stdout: ${result.stdout ? label(demo, result.stdout) : '(empty)'}${known ? '' : ' (NOT a key the gateway issued)'}, ${(result.endedAt - result.startedAt).toFixed(0)} ms`,
  );
  if (!known) throw new Error('keybroker get did not print a key the gateway issued');
  if (from && !result.stderr.includes(`from ${from}`)) throw new Error(`keybroker get did not serve the key from the ${from}`);
  return result;
}

function expectKey(demo: Demo, result: RunResult, index: number): void {
  if (result.stdout !== issuedKeys(demo)[index]) throw new Error(`keybroker get did not print key ${index + 1}`);
}

/** What Claude Code would get from the gateway with this key: a minimal message, its status. */
async function gatewayAnswers(demo: Demo, key: string, expected: number): Promise<void> {
  const response = await fetch(`${demo.gateway.url}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'ping' }] }),
    signal: AbortSignal.timeout(5_000),
  });
  await response.text();
  show(`gateway: POST /v1/messages with ${label(demo, key)} -> HTTP ${response.status}`);
  if (response.status !== expected) throw new Error(`the gateway answered ${response.status} where ${expected} was expected`);
}

/** Keys the gateway issued, in order: key 1 is the first minted. */
function issuedKeys(demo: Demo): string[] {
  return demo.gateway.keys.map((entry) => entry.key);
}

function label(demo: Demo, key: string): string {
  const index = issuedKeys(demo).indexOf(key);
  return `${index >= 0 ? `key ${index + 1} ` : ''}${fingerprint(key)}`;
}

/** A known secret in a line the demo is about to print is a bug in keybroker: mask it and fail. */
function guard(demo: Demo, line: string): string {
  let masked = line;
  for (const secret of [...issuedKeys(demo), demo.gateway.masterKey]) {
    if (masked.includes(secret)) {
      masked = masked.replaceAll(secret, `[LEAKED ${fingerprint(secret)}]`);
      leaks.push(fingerprint(secret));
    }
  }
  return masked;
}
const leaks: string[] = [];

async function waitUntil(at: number, what: string): Promise<void> {
  const ms = at - performance.now();
  if (ms <= 0) return;
  show(`(waiting ${seconds(ms)} until ${what})`);
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** "2.5s": the demo's durations are seconds, shown to a tenth. */
function seconds(ms: number): string {
  return `${Number((ms / 1_000).toFixed(1))}s`;
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

function show(line: string): void {
  console.log(`     ${line}`);
}

function buildIfNeeded(): void {
  const built = fs.existsSync(binary) ? fs.statSync(binary).mtimeMs : 0;
  const sources = ['src', 'providers', 'bin']
    .flatMap((dir) => (fs.readdirSync(path.join(root, dir), { recursive: true }) as string[]).map((name) => path.join(root, dir, name)))
    .filter((file) => file !== import.meta.filename);
  if (built && sources.every((file) => fs.statSync(file).mtimeMs <= built)) return;
  // As in the tests: the caller says the binary is current (e.g. a test run that built it).
  if (built && process.env['KEYBROKER_SKIP_BUILD'] === '1') return;
  console.log('Building dist/keybroker (npm run build:binary)...');
  execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

function requireMoto(): void {
  if (spawnSync('moto_server', ['--help'], { stdio: 'ignore' }).status === 0) return;
  console.error('demo: moto_server (the local AWS emulator) is not installed: run \'pip install "moto[server]"\' and npm run demo again');
  process.exit(2);
}

/** The children's environment: this shell's, minus anything that would point them at real accounts or keys. */
function childEnvironment(dir: string, configFile: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(KEYBROKER_|ANTHROPIC_|AWS_|CLAUDE_|LITELLM_)/.test(name)) delete env[name];
  }
  return {
    ...env,
    ...DEMO_CREDENTIALS,
    AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
    KEYBROKER_CONFIG: configFile,
    KEYBROKER_MACHINE_CONFIG: path.join(dir, 'no-machine-config.json'),
    KEYBROKER_CACHE_DIR: path.join(dir, 'cache'),
    KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'),
    KEYBROKER_CLAUDE_MANAGED_SETTINGS: path.join(dir, 'no-managed-settings.json'),
    CLAUDE_CONFIG_DIR: path.join(dir, 'claude'),
    CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(CALLER_TTL_MS),
  };
}

async function main(): Promise<void> {
  requireMoto();
  buildIfNeeded();
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'keybroker-demo-')));
  let moto: Started | undefined;
  let gateway: FakeLiteLlm | undefined;
  let demo: Demo | undefined;
  let stopping: Promise<void> | undefined;
  let interrupted = false;

  /** Stops everything the demo started; safe to call twice (a failure, then Ctrl-C). */
  const stopAll = () =>
    (stopping ??= (async () => {
      running?.kill('SIGTERM');
      // The cached key lives in the real keychain when there is one: forget it (bounded; best effort).
      if (demo && !demo.cleared) await runBinary(['cache', 'clear'], demo.developerEnv, dir, CLEANUP_TIMEOUT_MS).catch(() => undefined);
      await Promise.allSettled([moto?.stop(), gateway?.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    })());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true;
      console.error(`\ndemo: ${signal}: stopping the local store and gateway and removing ${dir}`);
      void stopAll().finally(() => process.exit(130));
    });
  }

  let failed = false;
  try {
    const port = await freePort();
    moto = startProcess('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { env: { ...process.env, ...DEMO_CREDENTIALS } });
    gateway = await startFakeLiteLlm();
    await waitForPort(port);
    const endpoint = `http://127.0.0.1:${port}`;
    const config = {
      defaultProfile: 'demo',
      profiles: {
        demo: {
          store: { type: 'aws', region: 'us-east-1', endpoint },
          secret: 'claude-code/keys/{user}',
          user: 'os',
          // auto: the OS keychain when there is one; otherwise it says so and uses a private file.
          cache: { backend: 'auto', fallback: 'file', refreshAfter: seconds(REFRESH_AFTER_MS) },
          gateway: gateway.url,
          keyIssuer: { type: 'litellm', url: gateway.url, masterKeyEnv: 'LITELLM_MASTER_KEY' },
        },
      },
    };
    const configFile = path.join(dir, 'config.json');
    fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
    const developerEnv = childEnvironment(dir, configFile);
    demo = {
      dir,
      user: os.userInfo().username,
      gateway,
      developerEnv,
      adminEnv: { ...developerEnv, LITELLM_MASTER_KEY: gateway.masterKey },
      cachedAt: 0,
      rotatedAt: 0,
      cleared: false,
    };
    console.log('keybroker demo: everything runs on this machine, in', dir);
    console.log(`   store:   AWS Secrets Manager API (moto) at ${endpoint}`);
    console.log(`   gateway: LiteLLM-style proxy at ${gateway.url} (key API for the admin, Anthropic API for Claude Code)`);
    console.log(`   config:  ${configFile}, profile "demo":`);
    console.log(`            ${JSON.stringify(config.profiles.demo)}`);
    for (const [index, step] of steps.entries()) {
      console.log(`\n${index + 1}. ${step.title}`);
      await step.run(demo);
    }
    if (leaks.length) throw new Error(`keybroker printed a key in full (${leaks.join(', ')})`);
    console.log('\nDone: a key provisioned, fetched, cached, rotated without a 401, and checked by doctor.');
    console.log('Point Claude Code at your own store and gateway with `keybroker config init` and `keybroker setup --write` (see README).');
  } catch (error) {
    failed = true;
    // After Ctrl-C the running step fails because its child was stopped: not worth a message.
    if (!interrupted) console.error(`\ndemo failed: ${(error as Error).message}`);
  } finally {
    await stopAll();
  }
  // Exit now: a keychain call that never returned must not keep the demo alive.
  process.exit(failed ? 1 : 0);
}

await main();
