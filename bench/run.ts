// `npm run bench`: start-up cost of dist/keybroker, measured with hyperfine on this machine.
//   warm get (cache hit)           vs a bare single executable that prints a constant (target ≤ 1.25x)
//   cold get (store read, moto)    vs `aws secretsmanager get-secret-value` on the same moto (target ≤ 0.4x)
// Compared commands run in alternating rounds, so a burst of load on a shared machine hits both.
// BENCH_COMPARE=/path/to/another/keybroker adds that build to the warm rounds (this build vs it).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMoto, type Moto } from '../test/support/moto.ts';
import { makeTestHome } from '../test/support/e2e-home.ts';
import { startSecretService, type SecretService } from '../test/support/secret-service.ts';
import { buildBareSea } from './bare-sea.ts';
import { loadConfig } from '../src/config/config.ts';
import { cacheAccount } from '../src/cache/account.ts';
import { fileCache } from '../src/cache/file.ts';
import { serializeEntry } from '../src/cache/entry.ts';
import { keyFilesDir } from '../src/kernel/paths.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', 'keybroker');
const KEY = 'sk-test-bench-0123456789abcdef';
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 5);
const RUNS_PER_ROUND = Number(process.env['BENCH_RUNS'] ?? 10);
/** Another build of keybroker (say, main's) timed in the same rounds, to show what a change costs on the warm path. */
const COMPARE = process.env['BENCH_COMPARE'];

interface Command {
  name: string;
  argv: string[];
}

function requireHyperfine(): void {
  if (spawnSync('hyperfine', ['--version']).status === 0) return;
  console.error(
    'bench: hyperfine is not installed: install it (Debian/Ubuntu: sudo apt-get install hyperfine; macOS: brew install hyperfine; or cargo install hyperfine) and run npm run bench again',
  );
  process.exit(2);
}

interface Times {
  /** Wall time of every run (ms). */
  wall: number[];
  /** user + system CPU time per round (ms, hyperfine's mean): steadier than wall time under load. */
  cpu: number[];
}

/** Times per command, over ROUNDS rounds of hyperfine on all of them. */
function measure(commands: Command[], env: NodeJS.ProcessEnv, scratch: string): Map<string, Times> {
  const times = new Map(commands.map((command) => [command.name, { wall: [], cpu: [] } as Times]));
  const json = path.join(scratch, 'hyperfine.json');
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? commands : [...commands].reverse();
    const args = ['--shell=none', '--warmup', '2', '--runs', String(RUNS_PER_ROUND), '--export-json', json];
    for (const command of order) args.push('--command-name', command.name, command.argv.join(' '));
    // hyperfine's own report and outlier warnings are noise here; its failures are not.
    const run = spawnSync('hyperfine', args, { env, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`bench: hyperfine failed: ${run.stderr.trim()}`);
    const { results } = JSON.parse(fs.readFileSync(json, 'utf8')) as {
      results: { command: string; times: number[]; user: number; system: number }[];
    };
    for (const result of results) {
      const entry = times.get(result.command)!;
      entry.wall.push(...result.times.map((seconds) => seconds * 1000));
      entry.cpu.push((result.user + result.system) * 1000);
    }
  }
  return times;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The command must print the key and succeed before it is timed. */
function checkPrints(argv: string[], env: NodeJS.ProcessEnv, expected: string): void {
  const result = spawnSync(argv[0]!, argv.slice(1), { env, encoding: 'utf8' });
  if (result.status !== 0 || result.stdout.trim() !== expected) {
    throw new Error(`bench: ${argv.join(' ')} did not print the key (exit ${result.status}): ${result.stderr.trim()}`);
  }
}

function row(label: string, subject: Times, baselineName: string, baseline: Times, target: number): string {
  const ratio = median(subject.wall) / median(baseline.wall);
  const cpuRatio = median(subject.cpu) / median(baseline.cpu);
  return (
    `| ${label} | ${median(subject.wall).toFixed(1)} ms | ${baselineName}: ${median(baseline.wall).toFixed(1)} ms | ${ratio.toFixed(2)}x | ` +
    `${median(subject.cpu).toFixed(1)} / ${median(baseline.cpu).toFixed(1)} ms = ${cpuRatio.toFixed(2)}x | ≤ ${target}x | ${ratio <= target ? 'met' : 'missed'} |`
  );
}

async function main(): Promise<void> {
  requireHyperfine();
  if (!fs.existsSync(binary)) {
    console.log('bench: building dist/keybroker first');
    execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: 'inherit' });
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-bench-'));
  let moto: Moto | undefined;
  let keyring: SecretService | undefined;
  try {
    const bare = buildBareSea(path.join(scratch, 'bare'));
    moto = await startMoto();
    const secret = `claude-code/keys/${os.userInfo().username}`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', KEY]);

    // One config, one profile per case, so that the compared commands share one environment.
    const store = { type: 'aws', region: 'us-east-1', endpoint: moto.endpoint };
    const profile = (cache: object) => ({ store, secret: 'claude-code/keys/{user}', cache });
    const config = {
      profiles: {
        cold: profile({ backend: 'none' }),
        file: profile({ backend: 'file', refreshAfter: '1h' }),
        keychain: profile({ backend: 'keychain', refreshAfter: '1h' }),
        // An SSO profile whose access token is cached: its warm get must cost what a key's does.
        sso: {
          oidc: { issuer: 'https://login.example.invalid', clientId: 'bench', resource: 'https://llm.example.invalid' },
          cache: { backend: 'file' },
        },
        // Signed in to a Claude apps gateway itself: its session token, cached as any SSO token is.
        appsGateway: {
          oidc: { issuer: 'https://claude-gateway.example.invalid', clientId: 'keybroker', flow: 'device' },
          cache: { backend: 'file' },
        },
      },
    };
    let keychainProblem: string | undefined;
    try {
      keyring = await startSecretService({ home: fs.mkdtempSync(path.join(scratch, 'home-')) });
    } catch (error) {
      keychainProblem = (error as Error).message;
    }
    const home = makeTestHome(config, keyring?.home ?? fs.mkdtempSync(path.join(scratch, 'home-')));
    const env = { ...home.env(), ...keyring?.env, AWS_PAGER: '' };

    const warm: Command[] = [
      { name: 'bare SEA', argv: [bare] },
      { name: 'warm file', argv: [binary, '--profile', 'file'] },
      { name: 'warm sso', argv: [binary, '--profile', 'sso'] },
    ];
    checkPrints(warm[1]!.argv, env, KEY); // fills the file cache
    // The sso profile's cached access token, as a login leaves it (no identity provider runs here).
    const ssoToken = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.sig-test-bench';
    const ssoProfile = loadConfig({ env: { ...env, KEYBROKER_PROFILE: 'sso' } }).profile;
    await fileCache(keyFilesDir(env)).write(
      cacheAccount(ssoProfile),
      serializeEntry({
        key: ssoToken,
        version: 'bench',
        secret: ssoProfile.secret,
        fetchedAt: Date.now(),
        expiresAt: Date.now() + 3_600_000,
      }),
    );
    checkPrints(warm[2]!.argv, env, ssoToken);
    // A session token of the shape the gateway issues (HS256, aud claude-gateway, 1 h); no gateway runs here.
    warm.push({ name: 'warm apps gateway', argv: [binary, '--profile', 'appsGateway'] });
    const sessionToken = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJjbGF1ZGUtZ2F0ZXdheSIsInN1YiI6ImJlbmNoIn0.sig-test-bench-session';
    const gatewayProfile = loadConfig({ env: { ...env, KEYBROKER_PROFILE: 'appsGateway' } }).profile;
    await fileCache(keyFilesDir(env)).write(
      cacheAccount(gatewayProfile),
      serializeEntry({
        key: sessionToken,
        version: 'bench',
        secret: gatewayProfile.secret,
        fetchedAt: Date.now(),
        expiresAt: Date.now() + 3_600_000,
      }),
    );
    checkPrints(warm[3]!.argv, env, sessionToken);
    if (keyring) {
      warm.push({ name: 'warm keychain', argv: [binary, '--profile', 'keychain'] });
      checkPrints(warm[4]!.argv, env, KEY); // fills the keychain
    }
    if (COMPARE) {
      warm.push({ name: 'compared warm file', argv: [COMPARE, '--profile', 'file'] });
      if (keyring) warm.push({ name: 'compared warm keychain', argv: [COMPARE, '--profile', 'keychain'] });
      for (const command of warm.slice(-2)) if (command.name.startsWith('compared')) checkPrints(command.argv, env, KEY);
    }
    const awsArgv =
      `aws --endpoint-url ${moto.endpoint} --region us-east-1 secretsmanager get-secret-value --secret-id ${secret} --query SecretString --output text`.split(
        ' ',
      );
    const cold: Command[] = [
      { name: 'cold get', argv: [binary, '--profile', 'cold'] },
      { name: 'aws CLI', argv: awsArgv },
    ];
    checkPrints(cold[0]!.argv, env, KEY);
    checkPrints(awsArgv, env, KEY);

    const warmTimes = measure(warm, env, scratch);
    const coldTimes = measure(cold, env, scratch);
    const bareTimes = warmTimes.get('bare SEA')!;
    const rows = [
      row('warm `get`, file cache hit', warmTimes.get('warm file')!, 'bare SEA', bareTimes, 1.25),
      row('warm `get`, SSO profile, cached access token (file)', warmTimes.get('warm sso')!, 'bare SEA', bareTimes, 1.25),
      row('warm `get`, Claude apps gateway session token (file)', warmTimes.get('warm apps gateway')!, 'bare SEA', bareTimes, 1.25),
    ];
    rows.push(
      keyring
        ? row('warm `get`, keychain hit (gnome-keyring, Secret Service)', warmTimes.get('warm keychain')!, 'bare SEA', bareTimes, 1.25)
        : `| warm \`get\`, keychain hit | not measured: no Secret Service (${keychainProblem}) | | | | | |`,
    );
    if (COMPARE) {
      rows.push(
        row(
          'warm `get`, file cache hit: this build vs BENCH_COMPARE',
          warmTimes.get('warm file')!,
          path.basename(COMPARE),
          warmTimes.get('compared warm file')!,
          1.05,
        ),
      );
      if (keyring)
        rows.push(
          row(
            'warm `get`, keychain hit: this build vs BENCH_COMPARE',
            warmTimes.get('warm keychain')!,
            path.basename(COMPARE),
            warmTimes.get('compared warm keychain')!,
            1.05,
          ),
        );
    }
    rows.push(
      row(
        'cold `get`, store read from moto',
        coldTimes.get('cold get')!,
        '`aws secretsmanager get-secret-value`',
        coldTimes.get('aws CLI')!,
        0.4,
      ),
    );

    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    const load = os.loadavg()[0]!.toFixed(1);
    console.log(
      `\nkeybroker bench, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${os.type()} ${os.release()}, ${os.cpus().length} × ${cpu}, ` +
        `node ${process.version}, load ${load}; medians of ${ROUNDS} alternating rounds × ${RUNS_PER_ROUND} runs (hyperfine)\n`,
    );
    console.log('| what | keybroker (median wall) | baseline (median wall) | ratio | CPU time (user+sys) | target | wall vs target |');
    console.log('|---|---|---|---|---|---|---|');
    for (const line of rows) console.log(line);
  } finally {
    await keyring?.stop();
    await moto?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
