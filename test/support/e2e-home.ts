// A throwaway HOME with a keybroker config file in it, for running the built binary.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AWS_TEST_CREDENTIALS } from './moto.ts';
import { cleanEnv } from './binary.ts';

export interface TestHome {
  dir: string;
  configFile: string;
  /** The binary's environment: this HOME, this config, moto's test credentials. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  writeConfig(config: unknown): void;
  /** Every file under the HOME (relative paths). */
  files(): string[];
  remove(): void;
}

export function makeTestHome(config?: unknown, dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-e2e-'))): TestHome {
  const configFile = path.join(dir, 'keybroker.json');
  const home: TestHome = {
    dir,
    configFile,
    env: (extra = {}) =>
      cleanEnv(
        {
          ...AWS_TEST_CREDENTIALS,
          AWS_CONFIG_FILE: path.join(dir, 'no-aws-config'),
          AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'no-aws-credentials'),
          KEYBROKER_CONFIG: configFile,
          ...extra,
        },
        dir,
      ),
    writeConfig: (next) => fs.writeFileSync(configFile, JSON.stringify(next, null, 2)),
    files: () => (fs.readdirSync(dir, { recursive: true }) as string[]).filter((name) => fs.statSync(path.join(dir, name)).isFile()),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
  if (config !== undefined) home.writeConfig(config);
  return home;
}

/** A one-profile config for an AWS store at `endpoint`. */
export function awsConfig(endpoint: string, profile: Record<string, unknown> = {}, store: Record<string, unknown> = {}) {
  return {
    profiles: {
      default: {
        store: { type: 'aws', region: 'us-east-1', endpoint, ...store },
        secret: 'claude-code/keys/{user}',
        ...profile,
      },
    },
  };
}
