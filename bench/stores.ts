// Cold and warm `get` per store, each against its test server (moto, or the protocol fakes),
// timed by hyperfine on the built binary. Run: npm run bench:stores
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { storeTypes } from '../providers/index.ts';
import { harnesses } from '../test/providers/harnesses.ts';

const root = path.resolve(import.meta.dirname, '..');
const binary = path.join(root, 'dist', 'keybroker');
const runs = Number(process.env['BENCH_RUNS'] ?? 20);

try {
  execFileSync('hyperfine', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('bench: hyperfine is not installed: apt-get install hyperfine (or brew install hyperfine)');
  process.exit(2);
}
if (!fs.existsSync(binary)) execFileSync(process.execPath, ['bin/build.ts'], { cwd: root, stdio: 'inherit' });

interface Row {
  store: string;
  coldMs: number;
  coldSd: number;
  warmMs: number;
  warmSd: number;
  chunkKiB: number;
}

// Asynchronous: the protocol fakes (vault, azure, gcp) serve from this very process.
const run = promisify(execFile);

async function hyperfine(command: string, env: NodeJS.ProcessEnv): Promise<{ mean: number; stddev: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-bench-'));
  const out = path.join(dir, 'result.json');
  try {
    const { stderr } = await run('hyperfine', ['--warmup', '3', '--runs', String(runs), '--shell', 'none', '--export-json', out, command], {
      env,
    });
    process.stderr.write(stderr);
    const result = JSON.parse(fs.readFileSync(out, 'utf8')) as { results: { mean: number; stddev: number }[] };
    return { mean: result.results[0]!.mean * 1000, stddev: result.results[0]!.stddev * 1000 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const type of storeTypes) {
  const harness = harnesses[type];
  if (!harness) continue;
  const server = await harness.start();
  try {
    await server.seed(server.developerSecret, 'sk-test-bench');
    const home = fs.mkdtempSync(path.join(os.tmpdir(), `kb-bench-${type}-`));
    const configFor = (backend: string) => {
      const file = path.join(home, `${backend}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify({
          profiles: { default: { store: server.storeConfig(server.port), secret: server.developerSecret, cache: { backend } } },
        }),
      );
      return file;
    };
    const base = {
      ...server.developerEnv,
      HOME: home,
      KEYBROKER_MACHINE_CONFIG: path.join(home, 'none.json'),
      KEYBROKER_CACHE_DIR: path.join(home, 'cache'),
    };
    // Cold: no cache, so every run loads the store's SDK chunk and reads the store.
    const cold = await hyperfine(`${binary} get`, { ...base, KEYBROKER_CONFIG: configFor('none') });
    const warmEnv = { ...base, KEYBROKER_CONFIG: configFor('file') };
    await run(binary, ['get'], { env: warmEnv });
    const warm = await hyperfine(`${binary} get`, warmEnv);
    const chunk = fs.statSync(path.join(root, 'dist', 'chunks', `provider-${type}.cjs`)).size / 1024;
    rows.push({ store: type, coldMs: cold.mean, coldSd: cold.stddev, warmMs: warm.mean, warmSd: warm.stddev, chunkKiB: chunk });
    fs.rmSync(home, { recursive: true, force: true });
  } finally {
    await server.stop();
  }
}

console.log(`\nkeybroker get per store (${runs} runs each, ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)})`);
console.log('| store | cold get (store read) | warm get (file cache) | SDK chunk |');
console.log('|---|---|---|---|');
for (const row of rows) {
  console.log(
    `| ${row.store} | ${row.coldMs.toFixed(1)} ± ${row.coldSd.toFixed(1)} ms | ${row.warmMs.toFixed(1)} ± ${row.warmSd.toFixed(1)} ms | ${row.chunkKiB.toFixed(0)} KiB |`,
  );
}
