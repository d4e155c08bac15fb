// The plain functions behind login, setup and the Claude Code checks.
import { describe, expect, test } from 'vitest';
import { login } from '../../src/broker/login.ts';
import { NotAuthenticated } from '../../src/kernel/errors.ts';
import { helperProgram, shellQuote } from '../../src/claude/settings.ts';
import { recommendedTtlMs } from '../../src/claude/setup.ts';
import type { Provider } from '../../providers/provider.ts';
import type { CacheStore } from '../../src/cache/cache-store.ts';
import { serializeEntry } from '../../src/cache/entry.ts';

function provider(overrides: Partial<Provider>): Provider {
  return {
    describe: () => 'Test Store',
    loginCommand: () => 'teststore login --profile dev',
    whoami: async () => ({ user: 'alice', principal: 'user/alice' }),
    readCurrent: async () => ({ value: 'sk-test-unit', version: '1' }),
    write: async () => ({ version: '1', created: true }),
    list: async function* () {},
    revoke: async () => {},
    ...overrides,
  };
}
const served = { key: 'sk-test-unit', version: '7', secret: 'keys/alice', fetchedAt: 0, from: 'store' as const };
/** A file cache that holds `held` for the login's account (what a refresh left there). */
const cacheHolding = (held: string | undefined, kind: CacheStore['kind'] = 'file'): CacheStore => ({
  kind,
  read: async (account) => (account === 'default:abc' ? held : undefined),
  write: async () => {},
  remove: async () => false,
});
const cacheDeps = (held: string | null = serializeEntry(served), kind: CacheStore['kind'] = 'file') => ({
  cache: cacheHolding(held ?? undefined, kind),
  account: 'default:abc',
});

describe('login', () => {
  test("runs the provider's interactive login (with a browser opener), then warms the cache", async () => {
    const steps: string[] = [];
    const result = await login({
      provider: provider({
        async interactiveLogin(io) {
          io.say('visit the page');
          await io.openBrowser('https://vault.example.com/ui/oidc');
          steps.push('interactive');
        },
        whoami: async () => {
          throw new Error('whoami must not be needed');
        },
      }),
      say: (line) => steps.push(`say ${line}`),
      openBrowser: async (url) => void steps.push(`browser ${url}`),
      refresh: async () => (steps.push('refresh'), served),
      ...cacheDeps(),
    });
    expect(result.kind).toBe('cached');
    expect(steps).toEqual([
      'say logging in to Test Store',
      'say visit the page',
      'browser https://vault.example.com/ui/oidc',
      'interactive',
      'refresh',
      expect.stringMatching(/^say cached key sha256:[0-9a-f]{8} \(version 7/),
    ]);
  });

  test('without an interactive login and not logged in: returns the exact CLI command, reads nothing', async () => {
    let refreshed = false;
    const result = await login({
      provider: provider({
        whoami: async () => {
          throw new NotAuthenticated('not logged in to Test Store', 'run it');
        },
      }),
      say: () => {},
      openBrowser: async () => {},
      refresh: async () => ((refreshed = true), served),
      ...cacheDeps(),
    });
    expect(result).toMatchObject({ kind: 'needs-cli-login', command: 'teststore login --profile dev' });
    expect(refreshed).toBe(false);
  });

  test('says "cached" only when the cache gives the key back', async () => {
    const lines: string[] = [];
    const base = {
      provider: provider({}),
      say: (line: string) => void lines.push(line),
      openBrowser: async () => {},
      refresh: async () => served,
    };
    const missing = await login({ ...base, ...cacheDeps(null) });
    expect(missing.kind).toBe('not-cached');
    expect(missing.kind === 'not-cached' && missing.error.exitCode).toBe(9);
    expect(missing.kind === 'not-cached' && missing.error.message).toMatch(
      /^read key sha256:[0-9a-f]{8} .* but it was not cached in the file cache/,
    );
    const older = await login({ ...base, ...cacheDeps(serializeEntry({ ...served, key: 'sk-test-older' })) });
    expect(older.kind).toBe('not-cached');
    const none = await login({ ...base, ...cacheDeps(null, 'none') });
    expect(none.kind).toBe('no-cache');
    expect(lines.some((line) => line.startsWith('cached'))).toBe(false);
    expect(lines.at(-1)).toMatch(/nothing is cached \(cache backend "none"\)/);
  });
});

describe('apiKeyHelper commands', () => {
  test.each([
    ["'/opt/my tools/keybroker'", '/opt/my tools/keybroker'],
    ['"/usr/local/bin/keybroker" get --profile eu', '/usr/local/bin/keybroker'],
    ['/usr/bin/keybroker', '/usr/bin/keybroker'],
    ['/opt/my\\ tools/keybroker --verbose', '/opt/my tools/keybroker'],
    ['keybroker', 'keybroker'],
  ])('%s runs %s', (command, program) => {
    expect(helperProgram(command)).toBe(program);
  });

  test('a quoted path survives the shell, quotes inside included', () => {
    expect(helperProgram(shellQuote("/opt/it's here/keybroker", 'linux'))).toBe("/opt/it's here/keybroker");
    expect(shellQuote('C:\\Program Files\\keybroker\\keybroker.exe', 'win32')).toBe('"C:\\Program Files\\keybroker\\keybroker.exe"');
  });

  test("the TTL setup recommends is half the refresh interval, at most Claude Code's default", () => {
    expect(recommendedTtlMs(30 * 60_000)).toBe(300_000);
    expect(recommendedTtlMs(4 * 60_000)).toBe(120_000);
    expect(recommendedTtlMs(1_000)).toBe(1_000);
  });
});
