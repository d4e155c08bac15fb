// Layer 1: which configuration files were read, whether they validate, the profile in use.
import fs from 'node:fs';
import { loadConfig } from '../config/config.ts';
import { machineConfigPath, userConfigPath } from '../kernel/paths.ts';
import { fail, ok, type CheckSpec } from './check.ts';
import type { DoctorDeps, DoctorState } from './state.ts';
import { KeybrokerError } from '../kernel/errors.ts';

export function configChecks(deps: DoctorDeps, state: DoctorState): CheckSpec[] {
  return [
    {
      id: 'configuration',
      layer: 'configuration',
      title: 'configuration',
      timeoutMs: 2_000,
      async run() {
        const searched = [machineConfigPath(deps.env), deps.configRequest.configFlag ?? userConfigPath(deps.env)];
        try {
          state.config = loadConfig(deps.configRequest);
        } catch (error) {
          if (!(error instanceof KeybrokerError)) throw error;
          const present = searched.filter((file) => fs.existsSync(file));
          return { ...fail(error.message, error.fix, { searched, present }), exitCode: error.exitCode };
        }
        const { profile, layers } = state.config;
        const files = layers.map((layer) => layer.source);
        return ok(
          `profile "${profile.name}" (chosen by ${state.config.sources['profile']}), ${profile.store ? `store ${profile.store.type}` : `SSO tokens from ${profile.oidc?.issuer}`}, read ${files.join(', ')}`,
          {
            profile: profile.name,
            read: files,
            searched,
          },
        );
      },
    },
  ];
}
