// In-memory stand-ins for the broker core's deps: a clock, a cache, a store, a lock.
import type { BrokerDeps } from '../../src/broker/broker.ts';
import type { CacheStore } from '../../src/cache/cache-store.ts';
import type { Profile } from '../../src/config/config.ts';
import type { Lock } from '../../src/broker/lock.ts';
import { memoryRotationState } from '../../src/broker/rotation-state.ts';
import type { Provider, SecretValue } from '../../providers/provider.ts';
import type { GatewayVerdict } from '../../src/gateway/key-check.ts';

export const MINUTE = 60_000;

export function testProfile(overrides: Partial<Profile['cache']> = {}): Profile {
  return {
    name: 'default',
    store: { type: 'aws', region: 'us-east-1' },
    secret: 'claude-code/keys/{user}',
    field: 'api_key',
    user: 'os',
    timeoutMs: 5_000,
    cache: { backend: 'file', refreshAfterMs: 30 * MINUTE, fallback: 'none', ...overrides },
  };
}

export function memoryCache(): CacheStore & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return {
    kind: 'file',
    data,
    read: async (account) => data.get(account),
    write: async (account, text) => void data.set(account, text),
    remove: async (account) => data.delete(account),
  };
}

/** A store holding one secret per user; `fail` makes the next reads throw. */
export class FakeStore {
  value: SecretValue = { value: 'sk-test-one', version: 'v1' };
  reads = 0;
  fail: (() => Error) | undefined;
  /** Runs inside a read, before it answers (to interleave with other callers). */
  during: (() => Promise<void>) | undefined;
  rotate(key: string, version: string, json?: Record<string, unknown>): void {
    this.value = { value: json ? JSON.stringify({ api_key: key, ...json }) : key, version };
  }
  provider(): Provider {
    return {
      describe: () => 'the fake store',
      loginCommand: () => 'fake login',
      whoami: async () => ({ user: 'alice', principal: 'alice' }),
      readCurrent: async () => {
        this.reads++;
        await this.during?.();
        if (this.fail) throw this.fail();
        return { ...this.value };
      },
      write: async () => ({ version: 'x', created: false }),
      list: async function* () {},
      revoke: async () => {},
    };
  }
}

/** A lock shared by the "processes" of one test (one holder at a time, FIFO). */
function memoryLock(): Lock {
  let tail: Promise<void> = Promise.resolve();
  return {
    async acquire() {
      let release!: () => void;
      const previous = tail;
      tail = new Promise<void>((resolve) => (release = resolve));
      await previous;
      return async () => release();
    },
  };
}

export interface World {
  clock: { now: number };
  cache: ReturnType<typeof memoryCache>;
  store: FakeStore;
  state: ReturnType<typeof memoryRotationState>;
  lock: Lock;
  warnings: string[];
  gateway: { verdict: GatewayVerdict; calls: number };
  deps(caller?: string, overrides?: Partial<BrokerDeps>): BrokerDeps;
}

export function world(profile: Profile = testProfile(), callerTtlMs = 5 * MINUTE): World {
  const w: World = {
    clock: { now: Date.parse('2026-11-27T09:00:00Z') },
    cache: memoryCache(),
    store: new FakeStore(),
    state: memoryRotationState(),
    lock: memoryLock(),
    warnings: [],
    gateway: { verdict: 'accepted', calls: 0 },
    deps(caller, overrides = {}) {
      return {
        profile,
        cache: w.cache,
        openProvider: async () => w.store.provider(),
        lock: w.lock,
        now: () => w.clock.now,
        // One virtual clock for both: tests that step the wall clock alone override this.
        monotonicNow: () => w.clock.now,
        osUser: () => 'alice',
        callerTtlMs,
        caller: caller ? { id: caller, how: 'process-tree', description: caller } : undefined,
        state: w.state,
        checkWithGateway: async () => {
          w.gateway.calls++;
          return w.gateway.verdict;
        },
        gatewayName: 'http://gateway.test',
        warn: (line) => void w.warnings.push(line),
        debug: () => {},
        ...overrides,
      };
    },
  };
  return w;
}
