// `npm run bench`: start-up cost of dist/keybroker, measured with hyperfine on this machine.
//   warm get (cache hit)           vs a bare single executable that prints a constant (target ≤ 1.25x)
//   cold get (store read, moto)    vs `aws secretsmanager get-secret-value` on the same moto (target ≤ 0.4x)
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMoto, type Moto } from '../test/support/moto.ts';
import { awsConfig, makeTestHome, type TestHome } from '../test/support/e2e-home.ts';
import { startSecretService, type SecretService } from '../test/support/secret-service.ts';
import { buildBareSea } from './bare-sea.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', 'keybroker');
const KEY = 'sk-test-bench-0123456789abcdef';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 30);

interface Measured {
  name: string;
  medianMs: number;
  meanMs: number;
  stddevMs: number;
}

function requireHyperfine(): void {
  if (spawnSync('hyperfine', ['--version']).status === 0) return;
  console.error(
    'bench: hyperfine is not installed: install it (Debian/Ubuntu: sudo apt-get install hyperfine; macOS: brew install hyperfine; or cargo install hyperfine) and run npm run bench again',
  );
  process.exit(2);
}

/** One hyperfine run of `commands` (no shell in between), each with its own environment. */
function hyperfine(commands: { name: string; command: string; env: NodeJS.ProcessEnv }[], scratch: string): Measured[] {
  return commands.map(({ name, command, env }) => {
    const json = path.join(scratch, 'hyperfine.json');
    // hyperfine's own report and its outlier warnings are noise here; its failures are not.
    const run = spawnSync('hyperfine', ['--shell=none', '--warmup', '3', '--runs', String(RUNS), '--export-json', json, '--command-name', name, command], {
      env,
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`bench: hyperfine failed for ${name}: ${run.stderr.trim()}`);
    const result = (JSON.parse(fs.readFileSync(json, 'utf8')) as { results: { median: number; mean: number; stddev: number }[] }).results[0]!;
    return { name, medianMs: result.median * 1000, meanMs: result.mean * 1000, stddevMs: (result.stddev ?? 0) * 1000 };
  });
}

/** The binary must print the key and succeed before it is timed. */
function checkPrints(command: string[], env: NodeJS.ProcessEnv, expected: string): void {
  const result = spawnSync(command[0]!, command.slice(1), { env, encoding: 'utf8' });
  if (result.status !== 0 || result.stdout.trim() !== expected) {
    throw new Error(`bench: ${command.join(' ')} did not print the key (exit ${result.status}): ${result.stderr.trim()}`);
  }
}

function row(label: string, subject: Measured, baseline: Measured, target: number): string {
  const ratio = subject.medianMs / baseline.medianMs;
  return `| ${label} | ${subject.medianMs.toFixed(1)} ms | ${baseline.name}: ${baseline.medianMs.toFixed(1)} ms | ${ratio.toFixed(2)}x | ≤ ${target}x | ${ratio <= target ? 'met' : 'MISSED'} |`;
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
  const homes: TestHome[] = [];
  try {
    const bare = buildBareSea(path.join(scratch, 'bare'));
    moto = await startMoto();
    const secret = `claude-code/keys/${os.userInfo().username}`;
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', KEY]);

    const cold = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'none' } }), fs.mkdtempSync(path.join(scratch, 'cold-')));
    const warmFile = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'file', refreshAfter: '1h' } }), fs.mkdtempSync(path.join(scratch, 'file-')));
    homes.push(cold, warmFile);
    checkPrints([binary], warmFile.env(), KEY); // fills the file cache
    checkPrints([binary], cold.env(), KEY);

    const rows: string[] = [];
    const [bareRun, warmFileRun] = hyperfine(
      [
        { name: 'bare SEA', command: bare, env: cold.env() },
        { name: 'warm get (file cache)', command: binary, env: warmFile.env() },
      ],
      scratch,
    );
    rows.push(row('warm `get`, file cache hit', warmFileRun!, bareRun!, 1.25));

    try {
      keyring = await startSecretService({ home: fs.mkdtempSync(path.join(scratch, 'keychain-')) });
      const warmKeychain = makeTestHome(awsConfig(moto.endpoint, { cache: { backend: 'keychain', refreshAfter: '1h' } }), keyring.home);
      const env = { ...warmKeychain.env(), ...keyring.env };
      checkPrints([binary], env, KEY); // fills the keychain
      const [keychainRun] = hyperfine([{ name: 'warm get (keychain)', command: binary, env }], scratch);
      rows.push(row('warm `get`, keychain hit (gnome-keyring)', keychainRun!, bareRun!, 1.25));
    } catch (error) {
      rows.push(`| warm \`get\`, keychain hit | not measured: no Secret Service here (${(error as Error).message}) | | | | |`);
    }

    const awsEnv = { ...cold.env(), AWS_PAGER: '' };
    const awsCommand = `aws --endpoint-url ${moto.endpoint} --region us-east-1 secretsmanager get-secret-value --secret-id ${secret} --query SecretString --output text`;
    checkPrints(awsCommand.split(' '), awsEnv, KEY);
    const [coldRun, awsRun] = hyperfine(
      [
        { name: 'cold get (moto)', command: binary, env: cold.env() },
        { name: 'aws CLI', command: awsCommand, env: awsEnv },
      ],
      scratch,
    );
    rows.push(row('cold `get`, store read from moto', coldRun!, awsRun!, 0.4));

    const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
    console.log(`\nkeybroker bench, ${new Date().toISOString().slice(0, 10)}, ${os.type()} ${os.release()}, ${os.cpus().length} × ${cpu}, node ${process.version}, hyperfine medians of ${RUNS} runs\n`);
    console.log('| what | keybroker | baseline | ratio | target | |');
    console.log('|---|---|---|---|---|---|');
    for (const line of rows) console.log(line);
  } finally {
    await keyring?.stop();
    await moto?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
