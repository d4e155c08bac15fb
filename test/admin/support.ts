// A moto store with IAM (admin, developer alice, mallory without rights) and the admin layer wired
// to it: providers per identity, an in-memory output, an audit log that keeps its records.
import fs from 'node:fs';
import type { Profile } from '../../src/config/config.ts';
import { openProvider } from '../../src/loader/open-store.ts';
import type { Output } from '../../src/kernel/output.ts';
import type { AdminDeps } from '../../src/admin/common.ts';
import type { AuditRecord } from '../../src/admin/audit.ts';
import type { Provider } from '../../providers/provider.ts';
import { awsHarness } from '../providers/aws.harness.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { withEnvironment } from '../support/environment.ts';

export function adminProfile(store: Profile['store'], overrides: Partial<Profile> = {}): Profile {
  return {
    name: 'admin-test',
    store,
    secret: 'claude-code/keys/{user}',
    field: 'api_key',
    user: 'store',
    timeoutMs: 5_000,
    cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
    ...overrides,
  };
}

/**
 * A provider acting as the identity in `env`. Each SDK client resolves credentials once, on its
 * first call; both are warmed inside `env`, so later calls may run concurrently with other identities.
 */
export async function providerAs(profile: Profile, env: NodeJS.ProcessEnv): Promise<Provider> {
  return withEnvironment(env, async () => {
    const provider = await openProvider(profile, { env, debug: () => {} });
    await provider.whoami();
    await provider.readCurrent('keybroker-warm-up').catch(() => undefined);
    return provider;
  });
}

interface CapturedOutput extends Output {
  out: string[];
  err: string[];
}

function captureOutput(): CapturedOutput {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (text) => void out.push(text), stderr: (line) => void err.push(line) };
}

export interface TestAdmin {
  deps: AdminDeps;
  output: CapturedOutput;
  audit: AuditRecord[];
}

export function adminDeps(provider: Provider, profile: Profile, overrides: Partial<AdminDeps> = {}): TestAdmin {
  const output = captureOutput();
  const audit: AuditRecord[] = [];
  const deps: AdminDeps = {
    provider,
    profile,
    valueFormat: 'json',
    now: Date.now,
    output,
    audit: { record: (entry) => void audit.push(entry) },
    actor: () => 'arn:aws:iam::123456789012:user/keybroker-admin',
    isTTY: false,
    ...overrides,
  };
  return { deps, output, audit };
}

export async function startAwsStore(): Promise<HarnessInstance> {
  return awsHarness.start();
}

/** The JSON lines of an audit log a running keybroker may be appending to: a line without its newline is still being written. */
export function completeJsonLines<T>(file: string): T[] {
  if (!fs.existsSync(file)) return [];
  const text = fs.readFileSync(file, 'utf8');
  return text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}
