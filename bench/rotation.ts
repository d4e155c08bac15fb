// `npm run bench:rotation`: what rotation handling costs and saves.
//  1. Storm (real dist/keybroker, moto behind a counting proxy): N concurrent `get` on a cold
//     cache → store reads, p50/p99 latency; next to N concurrent `--version` (start-up alone
//     under the same contention).
//  2. A simulated developer day (the broker core with a simulated clock, in-memory cache, store,
//     lock and gateway): 6 Claude Code processes for 8 h following Claude Code's calling pattern
//     (helper at the first request, again at the first request after each TTL while the old key
//     is sent once more, and at once after a 401), one admin rotation at 4 h. Store reads against
//     a naive helper that reads the store on every call.
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { getKey, refreshAhead } from '../src/broker/broker.ts';
import { BINARY } from '../test/support/binary.ts';
import { runMany } from '../test/support/launch-many.ts';
import { adminPut, developer, startStoreChain } from '../test/broker/e2e-world.ts';
import { MINUTE, testProfile, world } from '../test/broker/fakes.ts';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!);
}

async function storm(sizes: number[]): Promise<void> {
  if (!fs.existsSync(BINARY)) execFileSync(process.execPath, ['bin/build.ts'], { stdio: 'inherit' });
  const chain = await startStoreChain();
  try {
    await adminPut(chain.moto, 'sk-test-bench-storm');
    console.log('\nStorm: N concurrent `keybroker get`, cold file cache, moto behind a counting proxy');
    console.log('   N | store reads | failed | get p50 ms | get p99 ms | --version p50 ms | --version p99 ms');
    for (const n of sizes) {
      const dev = developer(chain.counter.url);
      const before = chain.counter.count('GetSecretValue');
      // From a launcher process: spawning them here would stall the counting proxy meanwhile.
      const envs = Array.from({ length: n }, () => ({ ...dev.env, CLAUDE_CODE_MESSAGING_TOKEN: randomUUID() }));
      const gets = await runMany({ command: BINARY, args: ['get'], envs });
      const reads = chain.counter.count('GetSecretValue') - before;
      const starts = await runMany({ command: BINARY, args: ['--version'], envs });
      const failed = gets.filter((r) => r.code !== 0 || r.stdout !== 'sk-test-bench-storm').length;
      const ms = gets.map((r) => r.ms);
      const startMs = starts.map((r) => r.ms);
      console.log(
        `${String(n).padStart(4)} | ${String(reads).padStart(11)} | ${String(failed).padStart(6)} | ${String(percentile(ms, 50)).padStart(10)} | ${String(percentile(ms, 99)).padStart(10)} | ${String(percentile(startMs, 50)).padStart(16)} | ${String(percentile(startMs, 99)).padStart(16)}`,
      );
      dev.remove();
    }
  } finally {
    await chain.stop();
  }
}

/** A small deterministic PRNG so that runs compare. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface DayResult {
  helperCalls: number;
  storeReads: number;
  requests: number;
  unauthorized: number;
  failedRequests: number;
  failedHelperCalls: number;
  /** Helper calls that waited for the store (the rest were answered from the cache). */
  waitedForStore: number;
}

async function developerDay(grace: boolean): Promise<DayResult> {
  const ttl = 5 * MINUTE;
  const w = world(testProfile(), ttl);
  const random = prng(grace ? 7 : 11);
  const dayStart = w.clock.now;
  const dayEnd = dayStart + 8 * 60 * MINUTE;
  const rotateAt = dayStart + 4 * 60 * MINUTE;
  let accepted = new Set(['sk-test-one']);
  w.gateway.verdict = 'accepted';
  const result: DayResult = {
    helperCalls: 0,
    storeReads: 0,
    requests: 0,
    unauthorized: 0,
    failedRequests: 0,
    failedHelperCalls: 0,
    waitedForStore: 0,
  };
  const background: Promise<unknown>[] = [];
  const processes = Array.from({ length: 6 }, (_, i) => ({
    id: `claude-${i}`,
    key: undefined as string | undefined,
    keyAt: 0,
    // Staggered starts over the first half hour; a request every 10–90 s while working.
    nextRequest: dayStart + Math.floor(random() * 30 * MINUTE),
  }));
  const deps = (id: string) => ({
    ...w.deps(id),
    checkWithGateway: async (key: string) => (accepted.has(key) ? ('accepted' as const) : ('rejected' as const)),
    // The detached refresh, run at the same simulated instant.
    startBackgroundRefresh: () => void background.push(refreshAhead(w.deps())),
  });
  const helper = async (id: string): Promise<string | undefined> => {
    result.helperCalls++;
    try {
      const served = await getKey(deps(id));
      await Promise.all(background.splice(0));
      if (served.from === 'store') result.waitedForStore++;
      return served.key;
    } catch {
      result.failedHelperCalls++;
      return undefined;
    }
  };
  let rotated = false;
  for (;;) {
    const next = processes.reduce((a, b) => (a.nextRequest <= b.nextRequest ? a : b));
    if (next.nextRequest >= dayEnd) break;
    w.clock.now = next.nextRequest;
    if (!rotated && w.clock.now >= rotateAt) {
      rotated = true;
      w.store.rotate('sk-test-two', 'v2');
      accepted = grace ? new Set(['sk-test-one', 'sk-test-two']) : new Set(['sk-test-two']);
    }
    // Claude Code: a key older than its TTL is sent once more while the helper re-runs.
    let sendKey = next.key;
    if (next.key === undefined) {
      sendKey = next.key = await helper(next.id);
      next.keyAt = w.clock.now;
    } else if (w.clock.now - next.keyAt >= ttl) {
      const fresh = await helper(next.id);
      if (fresh) {
        next.key = fresh;
        next.keyAt = w.clock.now;
      }
    }
    result.requests++;
    if (sendKey === undefined || !accepted.has(sendKey)) {
      result.unauthorized++;
      // On a 401: drop the key, run the helper at once, retry the request.
      next.key = await helper(next.id);
      next.keyAt = w.clock.now;
      if (next.key === undefined || !accepted.has(next.key)) result.failedRequests++;
    }
    next.nextRequest = w.clock.now + 10_000 + Math.floor(random() * 80_000);
  }
  result.storeReads = w.store.reads;
  return result;
}

async function main(): Promise<void> {
  const sizes = (process.env['BENCH_STORM_SIZES'] ?? '10,50').split(',').map(Number);
  await storm(sizes);
  console.log('\nDeveloper day (simulated clock through the broker core): 6 Claude Code processes, 8 h, TTL 5 min,');
  console.log('refreshAfter 30 min, one rotation at 4 h. Naive = a helper that reads the store on every call.');
  console.log(
    'rotation      | helper calls | keybroker store reads | naive store reads | fewer | 401s | failed requests | failed helper calls | calls that waited for the store',
  );
  for (const grace of [false, true]) {
    const day = await developerDay(grace);
    const ratio = day.helperCalls / day.storeReads;
    console.log(
      `${(grace ? 'grace period' : 'no grace').padEnd(13)} | ${String(day.helperCalls).padStart(12)} | ${String(day.storeReads).padStart(21)} | ${String(day.helperCalls).padStart(17)} | ${ratio.toFixed(1).padStart(4)}x | ${String(day.unauthorized).padStart(4)} | ${String(day.failedRequests).padStart(15)} | ${String(day.failedHelperCalls).padStart(19)} | ${String(day.waitedForStore).padStart(31)}`,
    );
  }
}

await main();
