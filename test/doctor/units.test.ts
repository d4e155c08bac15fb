// The plain functions behind login, setup and the Claude Code checks.
import { describe, expect, test } from 'vitest';
import { helperProgram, shellQuote } from '../../src/claude/settings.ts';
import { recommendedTtlMs } from '../../src/claude/setup.ts';
import type { Provider } from '../../providers/provider.ts';
import type { CacheStore } from '../../src/cache/cache-store.ts';
import { serializeEntry } from '../../src/cache/entry.ts';

function _provider(overrides: Partial<Provider>): Provider {
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
const _cacheDeps = (held: string | null = serializeEntry(served), kind: CacheStore['kind'] = 'file') => ({
  cache: cacheHolding(held ?? undefined, kind),
  account: 'default:abc',
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
