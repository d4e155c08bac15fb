// The real `aws` CLI as an independent client of the moto store, with the harness's admin credentials.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { HarnessInstance } from '../providers/contract.ts';

const run = promisify(execFile);

export async function awsCli(store: HarnessInstance, args: string[]): Promise<any> {
  const endpoint = (store.storeConfig(store.port) as unknown as { endpoint: string }).endpoint;
  const { stdout } = await run('aws', ['--endpoint-url', endpoint, '--region', 'us-east-1', '--output', 'json', ...args], {
    env: { ...store.adminEnv, AWS_PAGER: '' },
  });
  return stdout.trim() ? JSON.parse(stdout) : undefined;
}
