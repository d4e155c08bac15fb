// Shared set-up for the rotation end-to-end tests: moto behind a counting proxy behind a fault
// proxy, and a throwaway HOME with a keybroker config pointing at that chain.
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { startMoto, type Moto } from '../support/moto.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';
import { runBinary, type RunResult } from '../support/binary.ts';
import { awsConfig, makeTestHome } from '../support/e2e-home.ts';

const SECRET = 'claude-code/keys/alice';

export interface StoreChain {
  moto: Moto;
  counter: StoreProxy;
  faults: FaultProxy;
  stop(): Promise<void>;
}

export async function startStoreChain(): Promise<StoreChain> {
  const moto = await startMoto();
  const counter = await startStoreProxy(moto.port);
  const faults = await startFaultProxy(Number(new URL(counter.url).port));
  return {
    moto,
    counter,
    faults,
    async stop() {
      await faults.stop();
      await counter.stop();
      await moto.stop();
    },
  };
}

/** The admin puts (or creates) the developer's secret with the real aws CLI. */
export async function adminPut(moto: Moto, value: string, secret = SECRET): Promise<void> {
  try {
    await moto.aws(['secretsmanager', 'put-secret-value', '--secret-id', secret, '--secret-string', value]);
  } catch {
    await moto.aws(['secretsmanager', 'create-secret', '--name', secret, '--secret-string', value]);
  }
}

export interface Developer {
  home: string;
  env: NodeJS.ProcessEnv;
  get(extra?: NodeJS.ProcessEnv): Promise<RunResult>;
  cacheFiles(): string[];
  remove(): void;
}

export function developer(storeUrl: string, profile: Record<string, unknown> = {}, extraEnv: NodeJS.ProcessEnv = {}): Developer {
  const testHome = makeTestHome(awsConfig(storeUrl, { secret: SECRET, cache: { backend: 'file' }, ...profile }));
  const home = testHome.dir;
  const env = testHome.env({ KEYBROKER_CACHE_DIR: path.join(home, 'cache'), KEYBROKER_RUNTIME_DIR: path.join(home, 'run'), ...extraEnv });
  const keysDir = path.join(home, 'cache', 'keys');
  return {
    home,
    env,
    // Each call as a new Claude Code process: every test run has the same parent (the test worker),
    // which the 401 rule would otherwise take for one caller asking twice.
    get: (extra = {}) => runBinary(['get'], { env: { ...env, CLAUDE_CODE_MESSAGING_TOKEN: randomUUID(), ...extra } }),
    cacheFiles: () =>
      fs.existsSync(keysDir)
        ? fs
            .readdirSync(keysDir)
            .filter((name) => name.endsWith('.json'))
            .map((name) => path.join(keysDir, name))
        : [],
    remove: () => testHome.remove(),
  };
}

export function stderrLines(result: RunResult): string[] {
  return result.stderr.split('\n').filter(Boolean);
}
