import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.ts';
import { ConfigError } from '../../src/kernel/errors.ts';

let dir: string;
let machine: string;
let user: string;
const write = (file: string, data: unknown) => fs.writeFileSync(file, typeof data === 'string' ? data : JSON.stringify(data));
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ KEYBROKER_MACHINE_CONFIG: machine, KEYBROKER_CONFIG: user, ...extra });
const aws = { type: 'aws', region: 'us-east-1' };

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-config-'));
  machine = path.join(dir, 'machine.json');
  user = path.join(dir, 'user.json');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('configuration layers', () => {
  it('takes the machine-wide file, lets the user file override fields, and the environment override both', () => {
    write(machine, {
      defaultProfile: 'corp',
      profiles: { corp: { store: aws, secret: 'claude-code/keys/{user}', cache: { refreshAfter: '1h', backend: 'keychain' } } },
    });
    write(user, { profiles: { corp: { cache: { refreshAfter: '10m' } } } });
    const loaded = loadConfig({ env: env({ KEYBROKER_CACHE_BACKEND: 'file' }) });
    expect(loaded.profile.name).toBe('corp');
    expect(loaded.profile.cache).toEqual({ backend: 'file', refreshAfterMs: 600_000, fallback: 'none' });
    expect(loaded.profile.secret).toBe('claude-code/keys/{user}');
    expect(loaded.sources['secret']).toBe(machine);
    expect(loaded.sources['cache.refreshAfter']).toBe(user);
    expect(loaded.sources['cache.backend']).toContain('KEYBROKER_CACHE_BACKEND');
    expect(loaded.sources['profile']).toBe(machine);
  });

  it('picks the profile from the flag over KEYBROKER_PROFILE over defaultProfile', () => {
    write(user, {
      defaultProfile: 'a',
      profiles: { a: { store: aws, secret: 'a' }, b: { store: aws, secret: 'b' }, c: { store: aws, secret: 'c' } },
    });
    expect(loadConfig({ env: env() }).profile.secret).toBe('a');
    expect(loadConfig({ env: env({ KEYBROKER_PROFILE: 'b' }) }).profile.secret).toBe('b');
    expect(loadConfig({ env: env({ KEYBROKER_PROFILE: 'b' }), profileFlag: 'c' }).profile.secret).toBe('c');
  });

  it('fills the documented defaults', () => {
    write(user, { profiles: { default: { store: aws, secret: 's' } } });
    const { profile } = loadConfig({ env: env() });
    expect(profile).toMatchObject({
      field: 'api_key',
      user: 'os',
      timeoutMs: 5_000,
      cache: { backend: 'auto', refreshAfterMs: 1_800_000, fallback: 'none' },
    });
  });
});

describe('configuration errors name the file, the field and what is wrong', () => {
  const failure = (run: () => unknown): ConfigError => {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return error as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('an unknown field is an error, not ignored', () => {
    write(user, { profiles: { default: { store: aws, secret: 's', refreshAfter: '1h' } } });
    const error = failure(() => loadConfig({ env: env() }));
    expect(error.message).toContain(user);
    expect(error.message).toContain('refreshAfter');
  });

  it('a bad duration', () => {
    write(user, { profiles: { default: { store: aws, secret: 's', cache: { refreshAfter: 'soon' } } } });
    const error = failure(() => loadConfig({ env: env() }));
    expect(error.message).toContain('profiles.default.cache.refreshAfter');
    expect(error.message).toContain('duration');
  });

  it('an unknown store type', () => {
    write(user, { profiles: { default: { store: { type: 'dropbox' }, secret: 's' } } });
    expect(failure(() => loadConfig({ env: env() })).message).toMatch(/store\.type.*aws, azure, gcp, vault/);
  });

  it('invalid JSON', () => {
    write(user, '{ "profiles": ');
    expect(failure(() => loadConfig({ env: env() })).message).toContain(`${user} is not valid JSON`);
  });

  it('a profile that does not exist lists those that do', () => {
    write(user, { profiles: { work: { store: aws, secret: 's' } } });
    const error = failure(() => loadConfig({ env: env({ KEYBROKER_PROFILE: 'home' }) }));
    expect(error.message).toContain('"home"');
    expect(error.fix).toContain('work');
  });

  it('no configuration at all says where to get one', () => {
    const error = failure(() => loadConfig({ env: env({ KEYBROKER_CONFIG: undefined }) }));
    expect(error.message).toContain('no keybroker configuration');
    expect(error.fix).toContain('keybroker config init');
  });

  it('a KEYBROKER_CONFIG that does not exist is an error, not silence', () => {
    expect(failure(() => loadConfig({ env: env({ KEYBROKER_CONFIG: path.join(dir, 'missing.json') }) })).message).toContain(
      'does not exist',
    );
  });

  it('a bad environment variable names the variable', () => {
    write(user, { profiles: { default: { store: aws, secret: 's' } } });
    expect(failure(() => loadConfig({ env: env({ KEYBROKER_CACHE_BACKEND: 'cloud' }) })).message).toContain('KEYBROKER_CACHE_BACKEND');
  });

  it('a store field the provider does not know is an error when the config is read, before any SDK loads', () => {
    write(user, { profiles: { default: { store: { ...aws, bucket: 'x' }, secret: 's' } } });
    expect(() => loadConfig({ env: env() })).toThrow(/: unknown field "bucket" in profiles\.default\.store$/);
  });

  it("every store type's own schema is applied: a value and a nested field are named", () => {
    write(user, { profiles: { default: { store: { type: 'gcp', project: 'UPPER case' }, secret: 's' } } });
    expect(() => loadConfig({ env: env() })).toThrow(/field "profiles\.default\.store\.project" must be a GCP project id/);
    write(user, { profiles: { default: { store: { type: 'vault', auth: { method: 'approle', roleId: 'r' } }, secret: 's' } } });
    expect(() => loadConfig({ env: env() })).toThrow(/profiles\.default\.store\.auth.*approle needs "secretIdFile" or "secretIdEnv"/);
  });
});

describe('the machine-wide file binds what it enforces', () => {
  const corp = { store: aws, secret: 'corp/{user}', gateway: 'https://llm.corp.example' };

  it("KEYBROKER_MACHINE_CONFIG cannot replace the admins' file at the OS path (it would shed what that file enforces)", () => {
    const osFile = path.join(dir, 'os-machine.json');
    write(osFile, { enforce: ['secret'], profiles: { default: corp } });
    write(machine, { profiles: { default: { store: aws, secret: 'anything/i/like' } } });
    write(user, {});
    expect(() => loadConfig({ env: env(), osMachineConfig: osFile })).toThrow(
      new ConfigError(
        `KEYBROKER_MACHINE_CONFIG moves the machine-wide file to ${machine}, but the admins' file ${osFile} exists: a variable cannot replace it`,
        'unset KEYBROKER_MACHINE_CONFIG',
      ),
    );
    const atOsPath = loadConfig({ env: { KEYBROKER_CONFIG: user }, osMachineConfig: osFile });
    expect(atOsPath.profile.secret).toBe('corp/{user}');
    expect(atOsPath.enforced).toEqual(['secret']);
    // Absent at the OS path: the variable moves it (tests, a relocated install).
    fs.rmSync(osFile);
    expect(loadConfig({ env: env(), osMachineConfig: osFile }).profile.secret).toBe('anything/i/like');
  });

  it('a per-profile "enforce" binds that profile only; a cache field enforced binds each of its fields', () => {
    write(machine, {
      profiles: { corp: { ...corp, enforce: ['cache'], cache: { backend: 'keychain' } }, free: { store: aws, secret: 'free' } },
    });
    write(user, { profiles: { free: { secret: 'mine' }, corp: { cache: { backend: 'file' } } } });
    expect(loadConfig({ env: env(), profileFlag: 'free' }).profile.secret).toBe('mine');
    expect(() => loadConfig({ env: env(), profileFlag: 'corp' })).toThrow(
      /field "cache" is enforced by the machine-wide file .*, and .*user\.json sets it otherwise/,
    );
    write(user, { profiles: { free: { secret: 'mine' } } });
    expect(() => loadConfig({ env: env({ KEYBROKER_CACHE_BACKEND: 'none' }), profileFlag: 'corp' })).toThrow(
      /and KEYBROKER_CACHE_BACKEND sets it otherwise/,
    );
  });
});
