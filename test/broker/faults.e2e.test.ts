// Each store and cache fault against the real binary, moto behind a counting and a fault proxy.
import fs from 'node:fs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminPut, developer, startStoreChain, stderrLines, type Developer, type StoreChain } from './e2e-world.ts';
import { startLockedKeyring } from '../support/locked-keyring.ts';
import { storeCallCeilingMs } from '../../src/kernel/retry.ts';
import { expectWithinBound, processStart, RETRY_BACKOFF_MS } from '../support/time-bounds.ts';

/** The keychain's own bound (src/cache/keychain.ts): how long `get` waits for a Secret Service that does not answer. */
const KEYCHAIN_WAIT_MS = 2_000;

let chain: StoreChain;
let dev: Developer;
beforeAll(async () => {
  chain = await startStoreChain();
  await adminPut(chain.moto, 'sk-test-faults-one');
});
afterAll(async () => chain?.stop());
beforeEach(() => {
  chain.faults.set({ kind: 'pass' });
  chain.counter.delay(0);
});
afterEach(() => dev?.remove());

const reads = () => chain.counter.count('GetSecretValue');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('store faults', () => {
  it('serves the cached key with one warning while the store is down (warm cache)', async () => {
    dev = developer(chain.faults.url(), { cache: { backend: 'file', refreshAfter: '1s' } });
    expect((await dev.get()).code).toBe(0);
    await sleep(1_100);
    chain.faults.set({ kind: 'reset' });
    const result = await dev.get();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('sk-test-faults-one');
    expect(stderrLines(result)).toHaveLength(1);
    expect(result.stderr).toMatch(/cannot reach AWS Secrets Manager.*serving the cached key read \d+s ago/);
  });

  it('fails fast with a clear message when the store is down and nothing is cached', async () => {
    dev = developer(chain.faults.url());
    chain.faults.set({ kind: 'reset' });
    const yardstick = await processStart();
    const result = await dev.get();
    expect(result.code).toBe(7);
    expect(result.stdout).toBe('');
    expect(stderrLines(result)).toHaveLength(1);
    expect(result.stderr).toMatch(/^keybroker: cannot reach AWS Secrets Manager .*: check your network or VPN/);
    // Not the 5 s timeout: a reset connection is retried with back-off only, then reported.
    await expectWithinBound('a get against a store that resets', result.ms, RETRY_BACKOFF_MS, yardstick);
  });

  it('gives up on a store slower than the timeout: cold fails in time, warm serves the cache', async () => {
    dev = developer(chain.faults.url(), { timeout: '1s', cache: { backend: 'file', refreshAfter: '1s' } });
    expect((await dev.get()).code).toBe(0);
    await sleep(1_100);
    chain.counter.delay(4_000);
    const yardstick = await processStart();
    const warm = await dev.get();
    expect(warm.code).toBe(0);
    expect(warm.stdout).toBe('sk-test-faults-one');
    expect(warm.stderr).toMatch(/did not answer GetSecretValue within 1000 ms.*serving the cached key/);
    // The 1 s timeout (its wall-clock ceiling on a busy machine), not the store's 4 s.
    await expectWithinBound('a warm get against a store slower than its timeout', warm.ms, storeCallCeilingMs(1_000), yardstick);
    for (const file of dev.cacheFiles()) fs.rmSync(file);
    const cold = await dev.get();
    expect(cold.code).toBe(7);
    expect(cold.stderr).toMatch(/did not answer GetSecretValue within 1000 ms: check your network or VPN, or raise "timeout"/);
    await expectWithinBound('a cold get against a store slower than its timeout', cold.ms, storeCallCeilingMs(1_000), yardstick);
  });

  it("fails after its timeout when the store never answers (default 5 s; at most 1.5 × that on a busy machine, inside Claude Code's 10 s warning)", async () => {
    dev = developer(chain.faults.url());
    chain.faults.set({ kind: 'blackhole' });
    const yardstick = await processStart();
    const result = await dev.get();
    expect(result.code).toBe(7);
    expect(result.stderr).toMatch(/did not answer GetSecretValue within 5000 ms/);
    await expectWithinBound('a get against a store that never answers', result.ms, storeCallCeilingMs(5_000), yardstick);
  });

  it('waits out AWS throttling and then returns the key', async () => {
    dev = developer(chain.faults.url());
    const before = reads();
    chain.counter.throttle('GetSecretValue', 2);
    const result = await dev.get();
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('sk-test-faults-one');
    expect(result.stderr).toBe('');
    expect(reads() - before).toBe(3);
  });

  it("replaces a corrupt cache file with the store's key", async () => {
    dev = developer(chain.faults.url());
    expect((await dev.get()).code).toBe(0);
    const [file] = dev.cacheFiles();
    fs.writeFileSync(file!, '{"v":1,"key":"sk-test-trunc');
    const before = reads();
    const result = await dev.get();
    expect(result).toMatchObject({ code: 0, stdout: 'sk-test-faults-one', stderr: '' });
    expect(reads() - before).toBe(1);
    expect(JSON.parse(fs.readFileSync(file!, 'utf8')).key).toBe('sk-test-faults-one');
  });
});

describe('clock skew around expires_at', () => {
  const withExpiry = (ms: number) => JSON.stringify({ api_key: 'sk-test-expiring', expires_at: new Date(Date.now() + ms).toISOString() });
  const ttl = { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '10000' }; // margin = 2 × 10 s + 60 s = 80 s

  it('refuses a key that expires within the minute of clock slack', async () => {
    await adminPut(chain.moto, withExpiry(30_000));
    dev = developer(chain.faults.url(), {}, ttl);
    const result = await dev.get();
    expect(result.code).toBe(8);
    expect(result.stderr).toMatch(/expired at .* \(or expires within a minute\): ask your admin to rotate it/);
  });

  it('serves a key inside the margin but re-reads the store on every call until it is rotated', async () => {
    // A 10-minute TTL makes the margin 21 min: a key expiring in 15 min is inside it for 14 min,
    // whatever this machine's speed (with the 10 s TTL the window was 15 s wide).
    await adminPut(chain.moto, withExpiry(15 * 60_000));
    dev = developer(chain.faults.url(), {}, { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '600000' });
    const before = reads();
    expect((await dev.get()).stdout).toBe('sk-test-expiring');
    expect((await dev.get()).stdout).toBe('sk-test-expiring');
    expect(reads() - before).toBe(2);
  });

  it('serves a key well before the margin from the cache', async () => {
    await adminPut(chain.moto, withExpiry(10 * 60_000));
    dev = developer(chain.faults.url(), {}, ttl);
    const before = reads();
    await dev.get();
    expect((await dev.get()).stdout).toBe('sk-test-expiring');
    expect(reads() - before).toBe(1);
  });

  it('re-reads a cached entry stamped in the future (the clock went back)', async () => {
    await adminPut(chain.moto, 'sk-test-faults-one');
    dev = developer(chain.faults.url());
    await dev.get();
    const [file] = dev.cacheFiles();
    const entry = JSON.parse(fs.readFileSync(file!, 'utf8'));
    fs.writeFileSync(file!, JSON.stringify({ ...entry, fetchedAt: Date.now() + 3_600_000 }));
    const before = reads();
    expect((await dev.get()).code).toBe(0);
    expect(reads() - before).toBe(1);
  });
});

describe('keychain faults', () => {
  it('with no keychain at all, says so once and caches in the fallback file', async () => {
    await adminPut(chain.moto, 'sk-test-faults-one');
    dev = developer(
      chain.faults.url(),
      { cache: { backend: 'auto', fallback: 'file' } },
      { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/bus' },
    );
    const before = reads();
    const first = await dev.get();
    expect(first).toMatchObject({ code: 0, stdout: 'sk-test-faults-one' });
    expect(first.stderr).toMatch(/no usable keychain .*caching the key in a private file/);
    const second = await dev.get();
    expect(second).toMatchObject({ code: 0, stdout: 'sk-test-faults-one', stderr: '' });
    expect(reads() - before).toBe(1);
  });

  it("answers within the bound when the keychain never replies (a locked keyring's unanswered prompt)", async () => {
    await adminPut(chain.moto, 'sk-test-faults-one');
    const keyring = await startLockedKeyring();
    try {
      dev = developer(chain.faults.url(), { cache: { backend: 'auto' } }, keyring.env);
      const yardstick = await processStart();
      const first = await dev.get();
      expect(keyring.calls().some((call) => call.startsWith('Prompt'))).toBe(true);
      expect(first).toMatchObject({ code: 0, stdout: 'sk-test-faults-one', signal: null });
      expect(first.stderr).toMatch(/did not answer within 2000 ms/);
      await expectWithinBound('a get whose keychain never answers', first.ms, KEYCHAIN_WAIT_MS, yardstick);
      // The next run does not wait on the keychain again: it does not even ask it.
      const asked = keyring.calls().length;
      const second = await dev.get();
      expect(second).toMatchObject({ code: 0, stdout: 'sk-test-faults-one' });
      expect(keyring.calls().slice(asked)).toEqual([]);
      console.log(`hanging keychain: first get ${Math.round(first.ms)} ms, next get ${Math.round(second.ms)} ms`);
    } finally {
      await keyring.stop();
    }
  });

  it('answers within the bound when the Secret Service answers no call at all', async () => {
    await adminPut(chain.moto, 'sk-test-faults-one');
    const keyring = await startLockedKeyring('silent');
    try {
      dev = developer(chain.faults.url(), { cache: { backend: 'auto' } }, keyring.env);
      const yardstick = await processStart();
      const result = await dev.get();
      expect(keyring.calls().some((call) => call.startsWith('ignored'))).toBe(true);
      expect(result).toMatchObject({ code: 0, stdout: 'sk-test-faults-one', signal: null });
      expect(result.stderr).toMatch(/no usable keychain|did not answer/);
      console.log(`silent keychain: answered in ${Math.round(result.ms)} ms: ${result.stderr.trim()}`);
      await expectWithinBound('a get whose Secret Service answers nothing', result.ms, KEYCHAIN_WAIT_MS, yardstick);
    } finally {
      await keyring.stop();
    }
  });
});
