// Admin at fleet scale, through the built binary: `admin import` of N developers, `admin rotate
// --all` (keys minted by the LiteLLM-style fake) and `admin list`, against moto behind a proxy that
// adds latency to every call, as a far-away store. Two scenarios in one run, each on a fresh store:
// "quota allows" (no throttling) and "throttled" (the proxy refuses calls above --rate a second,
// as Secrets Manager answers ThrottlingException). In each, the serial baseline (--concurrency 1)
// runs on a sample of S developers against the same store and is extrapolated to N.
// moto is bench/moto-indexed.py (moto_server with its per-call scans of every secret taken out),
// --shards of them behind the proxy, split by secret name. Each step's CPU time per process
// (keybroker, this process = proxy + gateway fake, moto) is printed: what bounds the run.
// Run: npm run bench:admin [-- --developers 10000 --sample 200 --rate 40 --latency 50 --concurrency 16 --shards 2 --scenarios allows,throttled --moto indexed|plain]
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startProcess, waitForPort, type Started } from '../test/support/processes.ts';
import { AWS_TEST_CREDENTIALS } from '../test/support/moto.ts';
import { startFakeLiteLlm } from '../test/fakes/litellm.ts';
import { startRateProxy } from './rate-proxy.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', 'keybroker');
const { values } = parseArgs({
  options: {
    developers: { type: 'string', default: '10000' },
    sample: { type: 'string', default: '200' },
    rate: { type: 'string', default: '40' },
    latency: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '16' },
    shards: { type: 'string', default: '2' },
    scenarios: { type: 'string', default: 'allows,throttled' },
    moto: { type: 'string', default: 'indexed' },
  },
});
const N = Number(values.developers);
const S = Math.min(N, Number(values.sample));
const rate = Number(values.rate);
const latencyMs = Number(values.latency);
const shardCount = Math.max(1, Number(values.shards));
const scenarios = values.scenarios.split(',').map((name) => name.trim());
// `--moto plain`: moto_server as released, to see what bench/moto-indexed.py takes out.
if (values.moto !== 'indexed' && values.moto !== 'plain') {
  console.error('bench: --moto is indexed (bench/moto-indexed.py, the default) or plain (moto_server)');
  process.exit(2);
}
const motoCommand: [string, string[]] =
  values.moto === 'plain' ? ['moto_server', []] : ['python3', [path.join(root, 'bench', 'moto-indexed.py')]];
if (!fs.existsSync(binary)) {
  console.error('bench: build the binary first: npm run build:binary');
  process.exit(2);
}
const timeTool = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const ticks = 100; // USER_HZ on Linux

interface Shard {
  port: number;
  server: Started;
}

async function startShard(): Promise<Shard> {
  const port = await freePort();
  const server = startProcess(motoCommand[0], [...motoCommand[1], '-H', '127.0.0.1', '-p', String(port)], {
    env: { ...process.env, ...AWS_TEST_CREDENTIALS },
  });
  await waitForPort(port, 30_000);
  return { port, server };
}

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticks;
  } catch {
    return 0;
  }
}
const ownCpu = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

const shards = await Promise.all(Array.from({ length: shardCount }, () => startShard()));
const proxy = await startRateProxy(
  shards.map((shard) => shard.port),
  { latencyMs },
);
const litellm = await startFakeLiteLlm();
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-bench-admin-'));
const loadAtStart = os.loadavg();

interface Step {
  scenario: string;
  what: string;
  rows: number;
  ms: number;
  failed: number;
  summary: Record<string, unknown> | undefined;
  proxy: ReturnType<typeof proxy.stats>;
  cpu: { keybroker: number; bench: number; moto: number };
}

function configFor(template: string): string {
  const file = path.join(home, `${template.split('/')[0]}.json`);
  fs.writeFileSync(
    file,
    JSON.stringify({
      profiles: {
        default: {
          store: { type: 'aws', region: 'us-east-1', endpoint: proxy.url },
          secret: template,
          field: 'api_key',
          timeout: '60s',
          keyIssuer: { type: 'litellm', url: litellm.url, masterKeyEnv: 'BENCH_LITELLM_MASTER_KEY' },
        },
      },
    }),
  );
  return file;
}

function csvFor(prefix: string, count: number): string {
  const file = path.join(home, `${prefix}.csv`);
  const lines = ['user,key'];
  for (let index = 0; index < count; index++)
    lines.push(`${prefix}-${String(index).padStart(5, '0')},sk-test-bench-${prefix}-${index}-${Math.random().toString(36).slice(2, 12)}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

async function admin(scenario: string, what: string, rows: number, config: string, args: string[]): Promise<Step> {
  // Each step starts with the quota unused, as a separate admin action would: the step before's
  // calls leave the proxy's one-second window first (else they count against this step's rate).
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  proxy.reset();
  const env = {
    ...process.env,
    HOME: home,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    KEYBROKER_CONFIG: config,
    KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
    BENCH_LITELLM_MASTER_KEY: litellm.masterKey,
  };
  const motoBefore = shards.reduce((sum, shard) => sum + cpuSeconds(shard.server.child.pid), 0);
  const benchBefore = ownCpu();
  const started = performance.now();
  const command = [binary, 'admin', ...args, '--audit-log', path.join(home, 'audit.log')];
  const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
    const [file, ...rest] = timeTool ? [timeTool, '-f', 'bench-cpu %U %S', ...command] : command;
    execFile(file!, rest, { env, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ stdout, stderr, code: error ? Number(error.code ?? 1) : 0 }),
    );
  });
  const ms = performance.now() - started;
  const cpuLine = /bench-cpu ([\d.]+) ([\d.]+)/.exec(stderr);
  const cpu = {
    keybroker: cpuLine ? Number(cpuLine[1]) + Number(cpuLine[2]) : NaN,
    bench: ownCpu() - benchBefore,
    moto: shards.reduce((sum, shard) => sum + cpuSeconds(shard.server.child.pid), 0) - motoBefore,
  };
  let summary: Record<string, unknown> | undefined;
  let failed = 0;
  if (args[0] === 'list') {
    if (code !== 0) throw new Error(`${what} failed (exit ${code}): ${stderr.slice(-2000)}`);
    const listed = (JSON.parse(stdout) as unknown[]).length;
    if (listed !== rows) throw new Error(`${what}: listed ${listed} developers, expected ${rows}`);
  } else {
    try {
      summary = JSON.parse(stdout) as Record<string, unknown>;
    } catch {
      throw new Error(`${what} failed (exit ${code}) without a summary: ${stderr.slice(-2000)}`);
    }
    // Rows not done: those that failed and those never started after a failure.
    failed = ((summary['notWritten'] ?? summary['notRotated']) as unknown[]).length;
  }
  const step: Step = { scenario, what, rows, ms, failed, summary, proxy: proxy.stats(), cpu };
  process.stderr.write(
    `bench: [${scenario}] ${what}: ${rows} in ${(ms / 1000).toFixed(1)} s (exit ${code}); proxy ${JSON.stringify(step.proxy)}; cpu s ${JSON.stringify(Object.fromEntries(Object.entries(cpu).map(([name, seconds]) => [name, Number(seconds.toFixed(1))])))}; load ${os.loadavg()[0]!.toFixed(2)}` +
      `${summary ? `; ${JSON.stringify({ ...summary, failed: (summary['failed'] as unknown[]).length, notWritten: undefined, notRotated: undefined })}` : ''}\n`,
  );
  return step;
}

const results: { serial: Step | undefined; concurrent: Step }[] = [];
const seconds = (ms: number) => (ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);
try {
  for (const scenario of scenarios) {
    const limit = scenario === 'throttled' ? rate : undefined;
    if (scenario !== 'allows' && scenario !== 'throttled') throw new Error(`unknown scenario ${scenario}: allows or throttled`);
    // A fresh store for each scenario: the same number of secrets in each.
    await Promise.all(shards.map((shard) => fetch(`http://127.0.0.1:${shard.port}/moto-api/reset`, { method: 'POST' })));
    proxy.setRate(limit);
    const serialConfig = configFor(`${scenario}-serial/{user}`);
    const fleetConfig = configFor(`${scenario}-fleet/{user}`);
    const concurrency = ['--concurrency', String(values.concurrency)];
    const serialImport = await admin(scenario, 'import (serial)', S, serialConfig, [
      'import',
      csvFor(`${scenario}-serial`, S),
      '--concurrency',
      '1',
      '--json',
    ]);
    const fleetImport = await admin(scenario, 'import', N, fleetConfig, [
      'import',
      csvFor(`${scenario}-fleet`, N),
      ...concurrency,
      '--json',
    ]);
    results.push({ serial: serialImport, concurrent: fleetImport });
    const serialRotate = await admin(scenario, 'rotate --all (serial)', S, serialConfig, [
      'rotate',
      '--all',
      '--grace',
      '24h',
      '--concurrency',
      '1',
      '--json',
    ]);
    const fleetRotate = await admin(scenario, 'rotate --all', N, fleetConfig, [
      'rotate',
      '--all',
      '--grace',
      '24h',
      ...concurrency,
      '--json',
    ]);
    results.push({ serial: serialRotate, concurrent: fleetRotate });
    // `list` is one paged listing with no call per developer: the same code either way, timed once.
    results.push({ serial: undefined, concurrent: await admin(scenario, 'list', N, fleetConfig, ['list', '--json']) });

    // Every developer has exactly one key with no expiry at the gateway (the stored one); each old key ends with its grace.
    const fleet = `${scenario}-fleet-`;
    const live = litellm.keys.filter((entry) => !entry.revoked && entry.expires === null && entry.userId?.startsWith(fleet));
    const graced = litellm.keys.filter((entry) => !entry.revoked && entry.expires !== null && entry.userId?.startsWith(fleet));
    console.error(
      `bench: [${scenario}] gateway: ${live.length} unexpiring keys for ${N} developers, ${graced.length} old keys ending with their grace`,
    );
    if (live.length !== N) throw new Error(`expected ${N} unexpiring keys at the gateway, found ${live.length}`);
  }

  const loadAtEnd = os.loadavg();
  console.log(
    `\nkeybroker admin at fleet scale: ${N} developers, ${shardCount} moto server${shardCount === 1 ? '' : 's'} (${values.moto === 'plain' ? 'moto_server as released' : 'bench/moto-indexed.py'}) behind a proxy adding ${latencyMs} ms per call; serial = --concurrency 1 on ${S}, extrapolated; concurrent = --concurrency ${values.concurrency}` +
      ` (${os.cpus().length} cores, ${new Date().toISOString().slice(0, 16)}Z, load average ${loadAtStart.map((load) => load.toFixed(2)).join(' ')} at the start, ${loadAtEnd.map((load) => load.toFixed(2)).join(' ')} at the end)`,
  );
  console.log(
    '| scenario | action | serial (extrapolated) | concurrent | speed-up | failed rows | store calls/s | calls refused by the proxy (after the first; sent after the first refusal was answered) |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const { serial, concurrent } of results) {
    const scenario = concurrent.scenario === 'throttled' ? `throttled above ${rate} calls/s` : 'quota allows';
    const throttles = `${concurrent.proxy.throttled} (${concurrent.proxy.throttledAfterFirst}; ${concurrent.proxy.afterTold})`;
    const callRate = ((concurrent.proxy.calls * 1000) / concurrent.ms).toFixed(0);
    if (!serial) {
      console.log(
        `| ${scenario} | list | one paged listing (${concurrent.proxy.calls} calls), no call per developer | ${seconds(concurrent.ms)} | - | - | ${callRate} | ${throttles} |`,
      );
      continue;
    }
    const extrapolated = (serial.ms * N) / S;
    console.log(
      `| ${scenario} | ${concurrent.what} | ${seconds(extrapolated)} (${S} in ${seconds(serial.ms)}) | ${seconds(concurrent.ms)} | ${(extrapolated / concurrent.ms).toFixed(1)}× | ${concurrent.failed} | ${callRate} | ${throttles} |`,
    );
  }
  console.log('\nCPU seconds per step (2 cores = 2 s of CPU per second):');
  console.log(
    '| scenario | step | wall | keybroker | proxy + gateway fake | moto (all shards) | store calls | CPU ms per store call (all) |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  for (const { serial, concurrent } of results) {
    for (const step of serial ? [serial, concurrent] : [concurrent]) {
      const all = step.cpu.keybroker + step.cpu.bench + step.cpu.moto;
      console.log(
        `| ${step.scenario} | ${step.what} | ${seconds(step.ms)} | ${step.cpu.keybroker.toFixed(1)} | ${step.cpu.bench.toFixed(1)} | ${step.cpu.moto.toFixed(1)} | ${step.proxy.calls} | ${((all * 1000) / Math.max(1, step.proxy.calls)).toFixed(1)} |`,
      );
    }
  }
} finally {
  await litellm.stop();
  await proxy.stop();
  await Promise.all(shards.map((shard) => shard.server.stop()));
  fs.rmSync(home, { recursive: true, force: true });
}
