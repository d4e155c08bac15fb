// Doctor reads Claude Code's real settings files in a temp HOME: each misconfiguration that
// stops Claude Code from using keybroker is detected; `setup --write` fixes them, and the real
// Claude Code then gets its key from keybroker and talks to the gateway with it.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { BINARY } from '../support/binary.ts';
import { runClaude } from '../support/claude.ts';
import { check, KEY, startMachine, type Machine } from './setup.ts';

let machine: Machine;
beforeAll(async () => {
  machine = await startMachine();
});
afterAll(async () => {
  await machine?.stop();
});
beforeEach(() => {
  machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'` });
  machine.writeSettings('managed', undefined);
  machine.writeSettings('project', undefined);
  machine.writeSettings('local', undefined);
});

const claudeChecks = async (args: string[] = [], extraEnv: NodeJS.ProcessEnv = {}) => (await machine.doctorJson(args, extraEnv)).report;

describe('doctor detects each Claude Code misconfiguration', () => {
  test('a correct setup passes every Claude Code check', async () => {
    const report = await claudeChecks();
    for (const entry of report.checks.filter((item) => item.layer === 'claude-code'))
      expect([entry.id, entry.verdict]).toEqual([entry.id, 'OK']);
  });

  test('ANTHROPIC_API_KEY in the environment overrides the helper', async () => {
    const report = await claudeChecks([], { ANTHROPIC_API_KEY: 'sk-test-override-in-env' });
    const overrides = check(report, 'claude.overrides');
    expect(overrides.verdict).toBe('FAIL');
    expect(overrides.finding).toMatch(/ANTHROPIC_API_KEY in the environment: Claude Code sends it as x-api-key instead of keybroker's key/);
    expect(JSON.stringify(report)).not.toContain('sk-test-override-in-env');
  });

  test('ANTHROPIC_AUTH_TOKEN in a settings env block overrides the helper', async () => {
    machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'`, env: { ANTHROPIC_AUTH_TOKEN: 'sk-test-override-in-settings' } });
    const report = await claudeChecks();
    const overrides = check(report, 'claude.overrides');
    expect(overrides.verdict).toBe('FAIL');
    expect(overrides.finding).toContain(
      `ANTHROPIC_AUTH_TOKEN in user settings ${path.join(machine.home, '.claude', 'settings.json')}: Claude Code sends it as Authorization: Bearer`,
    );
    expect(JSON.stringify(report)).not.toContain('sk-test-override-in-settings');
  });

  test('forceLoginMethod and forceLoginOrgUUID in managed settings block the helper', async () => {
    machine.writeSettings('managed', { forceLoginMethod: 'claudeai', forceLoginOrgUUID: '00000000-0000-4000-8000-000000000000' });
    const forced = check(await claudeChecks(), 'claude.forced-login');
    expect(forced.verdict).toBe('FAIL');
    expect(forced.finding).toMatch(/forceLoginMethod="claudeai" in managed settings .*forceLoginOrgUUID=/);
    expect(forced.fix).toMatch(/admin/);
  });

  test('no apiKeyHelper anywhere', async () => {
    machine.writeSettings('user', { model: 'claude-sonnet-4-5' });
    const helper = check(await claudeChecks(), 'claude.api-key-helper');
    expect(helper.verdict).toBe('FAIL');
    expect(helper.finding).toMatch(/no settings file sets apiKeyHelper/);
    expect(helper.fix).toMatch(/keybroker setup --write/);
  });

  test('a relative apiKeyHelper path', async () => {
    machine.writeSettings('user', { apiKeyHelper: 'keybroker' });
    const helper = check(await claudeChecks(), 'claude.api-key-helper');
    expect(helper.verdict).toBe('FAIL');
    expect(helper.finding).toMatch(/a relative path/);
  });

  test('an apiKeyHelper that does not exist', async () => {
    machine.writeSettings('user', { apiKeyHelper: '/opt/nowhere/keybroker' });
    const helper = check(await claudeChecks(), 'claude.api-key-helper');
    expect(helper.verdict).toBe('FAIL');
    expect(helper.finding).toMatch(/\/opt\/nowhere\/keybroker, which does not exist/);
  });

  test('an apiKeyHelper that is not executable', async () => {
    const file = path.join(machine.home, 'bin', 'keybroker');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
    machine.writeSettings('user', { apiKeyHelper: `"${file}"` });
    const helper = check(await claudeChecks(), 'claude.api-key-helper');
    expect(helper.verdict).toBe('FAIL');
    expect(helper.finding).toMatch(/which is not executable/);
    expect(helper.fix).toBe(`chmod +x ${file}`);
  });

  test('project-local settings win over the user file, and are what doctor judges', async () => {
    machine.writeSettings('local', { apiKeyHelper: './keybroker' });
    const report = await claudeChecks(['--project', path.join(machine.home, 'project')]);
    const helper = check(report, 'claude.api-key-helper');
    expect(helper.verdict).toBe('FAIL');
    expect(helper.finding).toContain(
      `apiKeyHelper in local settings ${path.join(machine.home, 'project', '.claude', 'settings.local.json')}`,
    );
  });

  test('a CLAUDE_CODE_API_KEY_HELPER_TTL_MS that is not a number', async () => {
    machine.writeSettings('user', { apiKeyHelper: `'${BINARY}'`, env: { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '5m' } });
    const ttl = check(await claudeChecks(), 'claude.helper-ttl');
    expect(ttl.verdict).toBe('FAIL');
    expect(ttl.finding).toMatch(/"5m" in user settings .* is not a positive whole number/);
  });

  test('a TTL longer than the refresh interval is a warning', async () => {
    const ttl = check(await claudeChecks([], { CLAUDE_CODE_API_KEY_HELPER_TTL_MS: String(2 * 3_600_000) }), 'claude.helper-ttl');
    expect(ttl.verdict).toBe('WARN');
    expect(ttl.finding).toMatch(/longer than keybroker's refresh interval \(30m\)/);
  });

  test('a settings file that is not JSON', async () => {
    machine.writeSettings('user', '{ "apiKeyHelper": ');
    const settings = check(await claudeChecks(), 'claude.settings');
    expect(settings.verdict).toBe('FAIL');
    expect(settings.finding).toMatch(/is not valid JSON/);
  });
});

describe('setup', () => {
  const userFile = () => path.join(machine.home, '.claude', 'settings.json');

  test('prints the settings: quoted absolute helper, gateway, TTL matched to the refresh interval', async () => {
    const result = await machine.run(['setup', '--gateway', 'https://llm.example.com']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      apiKeyHelper: `'${BINARY}'`,
      env: { ANTHROPIC_BASE_URL: 'https://llm.example.com', CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' },
    });
    const short = await machine.run(['setup'], { KEYBROKER_REFRESH_AFTER: '4m' });
    expect(JSON.parse(short.stdout).env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS).toBe('120000');
  });

  test('--write keeps other keys and leaves a backup', async () => {
    const before = { model: 'claude-haiku-4-5', permissions: { allow: ['Bash(ls)'] }, env: { FOO: 'bar' }, apiKeyHelper: '/old/keybroker' };
    machine.writeSettings('user', before);
    const result = await machine.run(['setup', '--write', '--gateway', 'https://llm.example.com']);
    expect(result.code).toBe(0);
    const after = JSON.parse(fs.readFileSync(userFile(), 'utf8'));
    expect(after).toEqual({
      ...before,
      apiKeyHelper: `'${BINARY}'`,
      env: { FOO: 'bar', ANTHROPIC_BASE_URL: 'https://llm.example.com', CLAUDE_CODE_API_KEY_HELPER_TTL_MS: '300000' },
    });
    const backup = /backup at (\S+);/.exec(result.stderr)?.[1];
    expect(backup).toBeDefined();
    expect(JSON.parse(fs.readFileSync(backup!, 'utf8'))).toEqual(before);
  });

  test('--write refuses to replace an apiKeyHelper it did not write, unless --force', async () => {
    machine.writeSettings('user', { apiKeyHelper: '/usr/local/bin/corp-helper' });
    const refused = await machine.run(['setup', '--write']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/already has an apiKeyHelper that keybroker did not write .*--force/);
    expect(JSON.parse(fs.readFileSync(userFile(), 'utf8'))).toEqual({ apiKeyHelper: '/usr/local/bin/corp-helper' });
    const forced = await machine.run(['setup', '--write', '--force']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(userFile(), 'utf8')).apiKeyHelper).toBe(`'${BINARY}'`);
  });

  test('--write produces settings the real Claude Code uses: it runs keybroker and the gateway gets the key', async () => {
    machine.writeSettings('user', { model: 'claude-sonnet-4-5' });
    const written = await machine.run(['setup', '--write', '--gateway', machine.gateway.url]);
    expect(written.code).toBe(0);
    const doctor = await machine.doctorJson([], { ANTHROPIC_BASE_URL: '' });
    // The one WARN: this test's profile reads one fixed secret (no {user}), which doctor says every developer would share.
    for (const entry of doctor.report.checks.filter((item) => item.layer !== 'cache' && item.id !== 'store.secret-name'))
      expect([entry.id, entry.verdict]).toEqual([entry.id, 'OK']);
    expect(check(doctor.report, 'store.secret-name')).toMatchObject({
      verdict: 'WARN',
      fix: expect.stringContaining('put {user} in the profile'),
    });
    expect(check(doctor.report, 'gateway.url').finding).toContain('ANTHROPIC_BASE_URL in user settings');

    const before = machine.gateway.log.length;
    // No ANTHROPIC_BASE_URL in Claude Code's own environment: only the written settings carry it.
    const { ANTHROPIC_BASE_URL: _unused, ...env } = machine.env;
    const claude = await runClaude(['-p', 'say pong'], { env, cwd: machine.home });
    expect(claude.code, claude.stderr).toBe(0);
    expect(claude.stdout).toContain('pong');
    const messages = machine.gateway.log.slice(before).filter((entry) => entry.path === '/v1/messages');
    expect(messages.length).toBeGreaterThan(0);
    expect(messages.every((entry) => entry.xApiKey === KEY && entry.status === 200)).toBe(true);
  });
});

describe('the overrides doctor fails on are real in Claude Code', () => {
  test.each([
    ['ANTHROPIC_API_KEY', 'sk-test-override-api-key', 'xApiKey'],
    ['ANTHROPIC_AUTH_TOKEN', 'sk-test-override-token', 'bearer'],
  ] as const)("with %s set, Claude Code sends that instead of the helper's key", async (name, value, header) => {
    await machine.run(['setup', '--write', '--gateway', machine.gateway.url]);
    machine.gateway.acceptKeys([KEY, value]);
    try {
      const before = machine.gateway.log.length;
      const { ANTHROPIC_BASE_URL: _unused, ...env } = machine.env;
      const claude = await runClaude(['-p', 'say pong'], { env: { ...env, [name]: value }, cwd: machine.home });
      expect(claude.code, claude.stderr).toBe(0);
      const messages = machine.gateway.log.slice(before).filter((entry) => entry.path === '/v1/messages');
      expect(messages.length).toBeGreaterThan(0);
      expect(messages.every((entry) => entry[header] === value)).toBe(true);
    } finally {
      machine.gateway.acceptKeys([KEY]);
    }
  });
});
