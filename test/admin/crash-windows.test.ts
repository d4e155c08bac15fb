// `admin rotate` killed with SIGKILL at each of its steps (the built binary, moto behind a proxy, a
// LiteLLM-faithful gateway): the audit log holds the intent of the step that was cut, and a
// re-run (`--resume`, or the same rotate) leaves exactly one key of that developer live at the
// gateway, the one the store holds.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBinary, BINARY } from '../support/binary.ts';
import { runTag } from '../support/run-tag.ts';
import { AWS_TEST_CREDENTIALS, startMoto, type Moto } from '../support/moto.ts';
import { completeJsonLines } from './support.ts';
import { startStoreProxy, type StoreProxy } from '../support/store-proxy.ts';
import { startFakeLiteLlm, type FakeLiteLlm } from '../fakes/litellm.ts';

interface AuditLine {
  user: string;
  outcome: string;
  step?: string;
  settled?: boolean;
  alias?: string;
  token?: string;
}

describe('admin rotate killed at each step (binary)', () => {
  let moto: Moto;
  let proxy: StoreProxy;
  let litellm: FakeLiteLlm;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let auditFile: string;

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await startStoreProxy(moto.port);
    litellm = await startFakeLiteLlm();
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-crash-'));
    auditFile = path.join(home, 'audit.log');
    const config = path.join(home, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        profiles: {
          default: {
            store: { type: 'aws', region: 'us-east-1', endpoint: proxy.url },
            secret: 'crash/{user}',
            field: 'api_key',
            user: 'os',
            timeout: '30s',
            keyIssuer: { type: 'litellm', url: litellm.url },
          },
        },
      }),
    );
    env = cleanEnv({ ...AWS_TEST_CREDENTIALS, KEYBROKER_CONFIG: config, LITELLM_MASTER_KEY: litellm.masterKey }, home);
  }, 120_000);
  afterAll(async () => {
    await litellm?.stop();
    await proxy?.stop();
    await moto?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  const auditLines = (): AuditLine[] => completeJsonLines<AuditLine>(auditFile);
  const liveKeys = (user: string) =>
    litellm.keys.filter((entry) => entry.userId === user && litellm.accepts(entry.key)).map((entry) => entry.key);
  const storedKey = async (user: string) =>
    (
      JSON.parse(JSON.parse(await moto.aws(['secretsmanager', 'get-secret-value', '--secret-id', `crash/${user}`])).SecretString) as {
        api_key: string;
      }
    ).api_key;
  const rotate = (user: string, extra: string[] = []) =>
    runBinary(['admin', 'rotate', '--user', user, '--now', '--audit-log', auditFile, ...extra], { env });

  /**
   * A rotation of `user`, SIGKILLed once the audit log has a line of its own matching `at` and the
   * held call of the step after it has arrived (`arrived`).
   */
  async function killedRotation(user: string, at: RegExp, arrived: () => boolean): Promise<AuditLine> {
    const start = auditLines().length;
    const child = spawn(BINARY, ['admin', 'rotate', '--user', user, '--now', '--audit-log', auditFile], {
      env: { ...env, ...runTag() },
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    let cut: AuditLine | undefined;
    for (let waited = 0; !(cut && arrived()) && waited < 60_000; waited += 20) {
      cut = auditLines()
        .slice(start)
        .find((line) => line.user === user && at.test(line.outcome));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(arrived(), 'the held call arrived before the kill').toBe(true);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(cut, `an audit line matching ${at} before the kill`).toBeDefined();
    return cut!;
  }

  async function seeded(user: string): Promise<string> {
    const first = await rotate(user);
    expect(first.code, first.stderr).toBe(0);
    const key = await storedKey(user);
    expect(liveKeys(user)).toEqual([key]);
    return key;
  }

  it('killed while the gateway makes the key (after the mint intent): --resume finds it by its alias and deletes it; the stored key is the one live', async () => {
    const old = await seeded('mia');
    const issued = litellm.keys.length;
    litellm.failAfterCommit('/key/generate', { delayMs: 30_000 });
    const cut = await killedRotation('mia', /^intent: mint a new key$/, () => litellm.keys.length > issued);
    expect(cut.alias).toMatch(/^keybroker-mia-/);
    expect(liveKeys('mia')).toHaveLength(2);

    const resumed = await runBinary(['admin', 'rotate', '--resume', '--audit-log', auditFile], { env });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(
      /^mia: finished an interrupted rotation \(step .*\): the minted key was never stored: found by its alias and deleted; the old key is still the stored one, unchanged\n$/,
    );
    expect(liveKeys('mia')).toEqual([old]);
    expect(await storedKey('mia')).toBe(old);
    expect(
      auditLines()
        .filter((line) => line.step === cut.step)
        .at(-1),
    ).toMatchObject({ settled: true });
  }, 180_000);

  it('killed while the store write is in flight (it lands later): the same rotate run again retires the old key first, then rotates; one key live', async () => {
    const old = await seeded('ned');
    const puts = proxy.count('PutSecretValue');
    proxy.holdNext('PutSecretValue', 2_000);
    const cut = await killedRotation('ned', /^intent: store write$/, () => proxy.count('PutSecretValue') > puts);
    expect(cut.token).toMatch(/^[0-9a-f]{64}$/);
    // The held write reaches the store after the kill.
    let stored = old;
    for (let waited = 0; stored === old && waited < 30_000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      stored = await storedKey('ned');
    }
    expect(stored).not.toBe(old);
    expect(liveKeys('ned').sort()).toEqual([old, stored].sort());

    const again = await rotate('ned');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(
      /^ned: finished an interrupted rotation \(step .*\): the store holds the minted key; the old key was deleted at the gateway\nned: rotated to version/,
    );
    const now = await storedKey('ned');
    expect(liveKeys('ned')).toEqual([now]);
  }, 180_000);

  it('killed after the store write, before the old key is retired: --resume retires it; only the stored key is live', async () => {
    const old = await seeded('oli');
    const deletes = litellm.received('/key/delete');
    litellm.holdNext('/key/delete', 30_000);
    const cut = await killedRotation('oli', /^updated$/, () => litellm.received('/key/delete') > deletes);
    const stored = await storedKey('oli');
    expect(stored).not.toBe(old);
    expect(liveKeys('oli').sort()).toEqual([old, stored].sort());

    const resumed = await runBinary(['admin', 'rotate', '--resume', '--audit-log', auditFile], { env });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(
      /^oli: finished an interrupted rotation \(step .*\): the store holds the minted key; the old key was deleted at the gateway\n$/,
    );
    expect(liveKeys('oli')).toEqual([stored]);
    expect(
      auditLines()
        .filter((line) => line.step === cut.step)
        .at(-1),
    ).toMatchObject({ settled: true });
    // Nothing is left open: a second --resume does nothing.
    const second = await runBinary(['admin', 'rotate', '--resume', '--audit-log', auditFile], { env });
    expect([second.code, second.stdout]).toEqual([0, '']);
  }, 180_000);

  it('--resume without --audit-log is refused: with the audit on stderr there is nothing to resume from', async () => {
    const result = await runBinary(['admin', 'rotate', '--resume'], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--resume needs --audit-log FILE/);
  });
});
