// Real Claude Code against a gateway that accepts only the current key, with the key rotated by
// an admin with the real aws CLI in moto. The gateway's request log proves the sequence.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BINARY } from '../support/binary.ts';
import { runClaude as launchClaude } from '../support/claude.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { adminPut, developer, startStoreChain, type Developer, type StoreChain } from './e2e-world.ts';

const OLD = 'sk-test-rotation-old';
const NEW = 'sk-test-rotation-new';

let chain: StoreChain;
let gateway: FakeGateway;
let dev: Developer;
beforeAll(async () => {
  chain = await startStoreChain();
  gateway = await startFakeGateway();
});
afterAll(async () => {
  await gateway?.stop();
  await chain?.stop();
});
afterEach(() => dev?.remove());

/** `claude -p` as a developer runs it, with keybroker as its apiKeyHelper. */
async function runClaude(home: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  fs.mkdirSync(path.join(home, '.claude'), { recursive: true });
  fs.writeFileSync(path.join(home, '.claude', 'settings.json'), JSON.stringify({ apiKeyHelper: BINARY }));
  const run = await launchClaude(['-p', 'say pong'], { env, cwd: home, gateway: gateway.url });
  return { code: run.code, output: run.stdout + run.stderr };
}

/** The gateway's log from `from` on, as "status key" lines for the keyed requests. */
function keyedRequests(from: number): string[] {
  return gateway.log
    .slice(from)
    .filter((entry) => entry.path.startsWith('/v1/'))
    .map((entry) => `${entry.status} ${entry.xApiKey === OLD ? 'old' : entry.xApiKey === NEW ? 'new' : 'other'}`);
}

describe('rotation with real Claude Code', () => {
  it('recovers from a 401 at once: the old cached key is refused, keybroker re-checks the store, the retry succeeds', async () => {
    await adminPut(chain.moto, OLD);
    gateway.acceptKeys([OLD]);
    dev = developer(chain.counter.url);
    // An earlier session cached the old key.
    const earlier = await runClaude(dev.home, dev.env);
    expect(earlier.code).toBe(0);

    // The admin rotates with the real aws CLI; the gateway drops the old key at once.
    await adminPut(chain.moto, NEW);
    gateway.acceptKeys([NEW]);
    const from = gateway.log.length;
    const readsBefore = chain.counter.count('GetSecretValue');
    const session = await runClaude(dev.home, dev.env);

    expect(session.code, session.output).toBe(0);
    expect(session.output).toContain('pong');
    expect(keyedRequests(from)).toEqual(['401 old', '200 new']);
    expect(chain.counter.count('GetSecretValue') - readsBefore).toBe(1);
  });

  it('with a grace period (old key still accepted): no 401 at all, and the new key in use once the cached one is refreshAfter old', async () => {
    await adminPut(chain.moto, OLD);
    gateway.acceptKeys([OLD]);
    dev = developer(chain.counter.url, { cache: { backend: 'file', refreshAfter: '10m' } });
    expect((await dev.get()).stdout).toBe(OLD);

    await adminPut(chain.moto, NEW);
    gateway.acceptKeys([OLD, NEW]);
    const from = gateway.log.length;
    const session = async () => {
      const logStart = gateway.log.length;
      const run = await runClaude(dev.home, dev.env);
      expect(run.code, run.output).toBe(0);
      return keyedRequests(logStart);
    };
    // Inside refreshAfter: the cached old key, which the gateway still accepts.
    expect(await session()).toEqual(['200 old']);
    // The cached key made refreshAfter old in place, not waited for: a slow machine cannot move
    // the first session past the window.
    const [file] = dev.cacheFiles();
    const entry = JSON.parse(fs.readFileSync(file!, 'utf8'));
    fs.writeFileSync(file!, JSON.stringify({ ...entry, fetchedAt: Date.now() - 10 * 60_000 - 1_000 }));
    expect(await session()).toEqual(['200 new']);
    expect(keyedRequests(from).every((line) => line.startsWith('200'))).toBe(true);
  });

  it('after a 401 with no newer key in the store, asks the gateway once and says the key was revoked (exit 10)', async () => {
    await adminPut(chain.moto, OLD);
    gateway.acceptKeys([NEW]);
    dev = developer(chain.counter.url);
    const sameCaller = { CLAUDE_CODE_MESSAGING_TOKEN: 'one-claude-process', ANTHROPIC_BASE_URL: gateway.url };
    expect((await dev.get(sameCaller)).stdout).toBe(OLD);
    const reads = chain.counter.count('GetSecretValue');
    const checks = gateway.log.filter((entry) => entry.path === '/v1/models').length;
    const refused = await dev.get(sameCaller);
    expect(refused.code).toBe(10);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(
      /^keybroker: the gateway at http:\/\/127\.0\.0\.1:\d+ rejects your key \(sha256:[0-9a-f]{8}\) and the store holds no newer one: it was revoked: ask your admin to rotate your key/,
    );
    expect(refused.stderr).not.toContain(OLD);
    // Claude Code retries a failing helper: the repeats get the verdict without store or gateway.
    for (let i = 0; i < 3; i++) expect((await dev.get(sameCaller)).code).toBe(10);
    expect(chain.counter.count('GetSecretValue') - reads).toBe(1);
    expect(gateway.log.filter((entry) => entry.path === '/v1/models').length - checks).toBe(1);
  });
});
