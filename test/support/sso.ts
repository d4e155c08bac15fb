// Drives `keybroker login` for an oidc profile the way a developer would: reads the device code
// from its stderr and completes the sign-in on the OP's own pages (test/fakes/oidc-op.ts).
import { spawn } from 'node:child_process';
import { BINARY, type RunResult } from './binary.ts';
import { CLIENT_ID, type TestOp } from '../fakes/oidc-op.ts';

/** A one-profile config whose profile serves SSO tokens from `op`. */
export function ssoConfig(op: TestOp, oidc: Record<string, unknown> = {}, profile: Record<string, unknown> = {}) {
  return {
    profiles: {
      default: {
        oidc: {
          issuer: op.issuer,
          clientId: CLIENT_ID,
          scopes: ['openid', 'offline_access', 'gateway'],
          resource: op.resource,
          flow: 'device',
          ...oidc,
        },
        cache: { backend: 'file' },
        ...profile,
      },
    },
  };
}

/** `keybroker login` with the device flow, completed as `accountId` once the code is printed (at an OP, or a gateway in front of one). */
export function deviceLogin(
  op: Pick<TestOp, 'completeDeviceLogin'>,
  env: NodeJS.ProcessEnv,
  accountId: string,
  args: string[] = [],
  command: string[] = [BINARY],
): Promise<RunResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), 'login', ...args], { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signingIn: Promise<void> | undefined;
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      const code = /open (\S+) and enter the code (\S+)/.exec(stderr);
      if (code && !signingIn) signingIn = op.completeDeviceLogin(code[1]!, code[2]!, accountId).catch((error) => reject(error));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
}
