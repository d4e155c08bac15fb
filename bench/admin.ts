// Admin at fleet scale, through the built binary: `admin import` of N developers, `admin rotate
// --all` (keys minted by the LiteLLM-style fake), `admin list`, against moto behind a proxy that
// adds latency to every call and throttles above a rate, as a far-away store with a write quota.
// The serial baseline (--concurrency 1) runs in the same process on a smaller sample and is
// extrapolated to N. Run: npm run bench:admin [-- --developers 10000 --sample 200 --rate 40 --latency 50]
// (--rate 0: no throttling, the case where the quota allows the full width).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startMoto } from '../test/support/moto.ts';
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
  },
});
const N = Number(values.developers);
const S = Math.min(N, Number(values.sample));
const rate = Number(values.rate) || undefined;
const latencyMs = Number(values.latency);
if (!fs.existsSync(binary)) {
  console.error('bench: build the binary first: npm run build:binary');
  process.exit(2);
}

const moto = await startMoto();
const proxy = await startRateProxy(moto.port, { latencyMs, ...(rate ? { perSecond: rate } : {}) });
const litellm = await startFakeLiteLlm();
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-bench-admin-'));

interface Step {
  what: string;
  rows: number;
  ms: number;
  summary: Record<string, unknown> | undefined;
  proxy: ReturnType<typeof proxy.stats>;
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
  for (let index = 0; index < count; index++) lines.push(`${prefix}-${String(index).padStart(5, '0')},sk-test-bench-${prefix}-${index}-${Math.random().toString(36).slice(2, 12)}`);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

async function admin(what: string, rows: number, config: string, args: string[]): Promise<Step> {
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
  const started = performance.now();
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(binary, ['admin', ...args, '--audit-log', path.join(home, 'audit.log')], { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${what} failed (exit ${error.code}): ${stderr.slice(-2000)}`));
      else resolve({ stdout });
    });
  });
  const ms = performance.now() - started;
  let summary: Record<string, unknown> | undefined;
  try {
    summary = args.includes('--json') && !args.includes('list') ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
  } catch {
    summary = undefined;
  }
  if (args[0] === 'list') {
    const listed = (JSON.parse(stdout) as unknown[]).length;
    if (listed !== rows) throw new Error(`${what}: listed ${listed} developers, expected ${rows}`);
  }
  const step = { what, rows, ms, summary, proxy: proxy.stats() };
  process.stderr.write(`bench: ${what}: ${rows} in ${(ms / 1000).toFixed(1)} s; proxy ${JSON.stringify(step.proxy)}${summary ? `; ${JSON.stringify({ ...summary, failed: (summary['failed'] as unknown[]).length, notWritten: undefined, notRotated: undefined })}` : ''}\n`);
  return step;
}

const results: { serial: Step; concurrent: Step }[] = [];
try {
  const serialConfig = configFor('serial/{user}');
  const fleetConfig = configFor('fleet/{user}');
  const concurrency = ['--concurrency', String(values.concurrency)];
  const serialImport = await admin('import (serial)', S, serialConfig, ['import', csvFor('serial', S), '--concurrency', '1', '--json']);
  const fleetImport = await admin('import', N, fleetConfig, ['import', csvFor('fleet', N), ...concurrency, '--json']);
  results.push({ serial: serialImport, concurrent: fleetImport });
  const serialRotate = await admin('rotate --all (serial)', S, serialConfig, ['rotate', '--all', '--grace', '24h', '--concurrency', '1', '--json']);
  const fleetRotate = await admin('rotate --all', N, fleetConfig, ['rotate', '--all', '--grace', '24h', ...concurrency, '--json']);
  results.push({ serial: serialRotate, concurrent: fleetRotate });
  // `list` is one paged listing with no call per developer: the same code either way, timed once.
  const fleetList = await admin('list', N, fleetConfig, ['list', '--json']);
  results.push({ serial: fleetList, concurrent: fleetList });

  // Every developer has exactly one key with no expiry at the gateway (the stored one); each old key ends with its grace.
  const live = litellm.keys.filter((entry) => !entry.revoked && entry.expires === null && entry.userId?.startsWith('fleet-'));
  const graced = litellm.keys.filter((entry) => !entry.revoked && entry.expires !== null && entry.userId?.startsWith('fleet-'));
  console.error(`bench: gateway: ${live.length} unexpiring keys for ${N} developers, ${graced.length} old keys ending with their grace`);
  if (live.length !== N) throw new Error(`expected ${N} unexpiring keys at the gateway, found ${live.length}`);

  const seconds = (ms: number) => (ms >= 60_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);
  console.log(
    `\nkeybroker admin at fleet scale: ${N} developers, moto behind a proxy adding ${latencyMs} ms per call${rate ? ` and throttling above ${rate} calls/s` : ', no throttling'}; serial = --concurrency 1 on ${S}, extrapolated (${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)})`,
  );
  console.log('| action | serial (extrapolated) | concurrent | speed-up | failed rows | store calls throttled (after the first; > 1 s after it) |');
  console.log('|---|---|---|---|---|---|');
  for (const { serial, concurrent } of results) {
    const failed = concurrent.summary ? (concurrent.summary['failed'] as unknown[]).length : 0;
    const throttles = `${concurrent.proxy.throttled} (${concurrent.proxy.throttledAfterFirst}; ${concurrent.proxy.afterReaction})`;
    if (concurrent.what === 'list') {
      console.log(`| list | one paged listing (${concurrent.proxy.calls} calls), no call per developer: ${seconds(concurrent.ms)} | ${seconds(concurrent.ms)} | - | 0 | ${throttles} |`);
      continue;
    }
    const extrapolated = (serial.ms * N) / S;
    console.log(`| ${concurrent.what} | ${seconds(extrapolated)} (${S} in ${seconds(serial.ms)}) | ${seconds(concurrent.ms)} | ${(extrapolated / concurrent.ms).toFixed(1)}× | ${failed} | ${throttles} |`);
  }
} finally {
  await litellm.stop();
  await proxy.stop();
  await moto.stop();
  fs.rmSync(home, { recursive: true, force: true });
}
