// A real moto_server (AWS emulator) on 127.0.0.1, and the real `aws` CLI pointed at it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, startProcess, waitForPort } from './processes.ts';

const run = promisify(execFile);

export const AWS_TEST_CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
};

export interface Moto {
  endpoint: string;
  port: number;
  /** The server's process (its group leader). */
  pid: number;
  /** The real aws CLI against this server, as an admin (stdout returned). */
  aws(args: string[], input?: string): Promise<string>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export interface MotoOptions {
  /** Requests served before moto starts enforcing IAM (auth and policies); default: never. */
  initialNoAuthActions?: number;
}

export async function startMoto(options: MotoOptions = {}): Promise<Moto> {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, ...AWS_TEST_CREDENTIALS };
  if (options.initialNoAuthActions !== undefined) env['INITIAL_NO_AUTH_ACTION_COUNT'] = String(options.initialNoAuthActions);
  const server = startProcess('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { env });
  try {
    await waitForPort(port);
  } catch (error) {
    await server.stop();
    throw new Error(`moto_server did not start: ${server.output()}`, { cause: error });
  }
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    pid: server.child.pid!,
    async aws(args, input) {
      const child = run('aws', ['--endpoint-url', endpoint, '--region', 'us-east-1', '--output', 'json', ...args], {
        env: { ...process.env, ...AWS_TEST_CREDENTIALS, AWS_PAGER: '' },
      });
      if (input !== undefined) child.child.stdin?.end(input);
      const { stdout } = await child;
      return stdout;
    },
    async reset() {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    stop: () => server.stop(),
  };
}
