// A developer's machine for doctor tests: moto holding alice's key, the fake gateway accepting
// it, a keybroker config, and Claude Code settings in a temp HOME pointing at the built binary.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMoto, AWS_TEST_CREDENTIALS, type Moto } from '../support/moto.ts';
import { startFakeGateway, type FakeGateway } from '../fakes/gateway.ts';
import { BINARY, cleanEnv, runBinary, type RunResult } from '../support/binary.ts';

export const KEY = 'sk-test-doctor-0f1e2d3c4b5a69788796a5b4c3d2e1f0';
export const SECRET = 'claude-code/keys/alice';

export interface Machine {
  moto: Moto;
  gateway: FakeGateway;
  home: string;
  env: NodeJS.ProcessEnv;
  /** Everything any run printed, for the test that greps it all for the key. */
  transcript: string[];
  run(args: string[], extraEnv?: NodeJS.ProcessEnv, options?: { cwd?: string; replaceEnv?: NodeJS.ProcessEnv }): Promise<RunResult>;
  doctorJson(args?: string[], extraEnv?: NodeJS.ProcessEnv, replaceEnv?: NodeJS.ProcessEnv): Promise<{ result: RunResult; report: Report }>;
  writeConfig(profile: Record<string, unknown>): void;
  writeSettings(scope: 'user' | 'managed' | 'project' | 'local', data: unknown): void;
  stop(): Promise<void>;
}

export interface Report {
  schema: number;
  ok: boolean;
  summary: Record<string, number>;
  checks: { id: string; layer: string; title: string; verdict: string; finding: string; fix: string; details?: Record<string, unknown> }[];
}

export function check(report: Report, id: string) {
  const found = report.checks.find((entry) => entry.id === id);
  if (!found) throw new Error(`no check ${id} in ${report.checks.map((entry) => entry.id).join(', ')}`);
  return found;
}

export async function startMachine(): Promise<Machine> {
  const moto = await startMoto();
  await moto.aws(['secretsmanager', 'create-secret', '--name', SECRET, '--secret-string', JSON.stringify({ api_key: KEY })]);
  const gateway = await startFakeGateway({ keys: [KEY] });
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-doctor-'));
  const transcript: string[] = [];
  const env = cleanEnv(
    {
      ...AWS_TEST_CREDENTIALS,
      ANTHROPIC_BASE_URL: gateway.url,
      KEYBROKER_CLAUDE_MANAGED_SETTINGS: path.join(home, 'managed-settings.json'),
      KEYBROKER_RUNTIME_DIR: path.join(home, 'run'),
    },
    home,
  );
  const machine: Machine = {
    moto,
    gateway,
    home,
    env,
    transcript,
    async run(args, extraEnv = {}, options = {}) {
      const result = await runBinary(args, {
        env: { ...(options.replaceEnv ?? env), ...extraEnv },
        cwd: options.cwd ?? home,
        timeoutMs: 40_000,
      });
      transcript.push(result.stdout, result.stderr);
      return result;
    },
    async doctorJson(args = [], extraEnv = {}, replaceEnv) {
      const result = await machine.run(['doctor', '--json', ...args], extraEnv, replaceEnv ? { replaceEnv } : {});
      let report: Report;
      try {
        report = JSON.parse(result.stdout) as Report;
      } catch {
        throw new Error(`doctor --json printed no JSON (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
      }
      return { result, report };
    },
    writeConfig(profile) {
      const file = path.join(home, '.config', 'keybroker', 'config.json');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify({ profiles: { default: profile } }, null, 2));
    },
    writeSettings(scope, data) {
      const file = {
        user: path.join(home, '.claude', 'settings.json'),
        managed: path.join(home, 'managed-settings.json'),
        project: path.join(home, 'project', '.claude', 'settings.json'),
        local: path.join(home, 'project', '.claude', 'settings.local.json'),
      }[scope];
      fs.mkdirSync(path.dirname(file), { recursive: true });
      if (data === undefined) fs.rmSync(file, { force: true });
      else fs.writeFileSync(file, typeof data === 'string' ? data : JSON.stringify(data, null, 2));
    },
    async stop() {
      await gateway.stop();
      await moto.stop();
      fs.rmSync(home, { recursive: true, force: true });
    },
  };
  machine.writeConfig(awsProfile(moto.endpoint));
  machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'` });
  return machine;
}

export function awsProfile(endpoint: string) {
  return {
    store: { type: 'aws', region: 'us-east-1', endpoint },
    secret: SECRET,
    cache: { backend: 'file' },
  };
}
