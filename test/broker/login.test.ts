// `keybroker login`: the interactive step get never takes, then a refresh whose key must be found in the cache.
import { describe, expect, it } from 'vitest';
import { login, type LoginDeps } from '../../src/broker/login.ts';
import type { Served } from '../../src/broker/broker.ts';
import { serializeEntry } from '../../src/cache/entry.ts';
import { CacheUnavailable, NotAuthenticated, StoreUnreachable } from '../../src/kernel/errors.ts';
import { fingerprint } from '../../src/secret/value.ts';
import { FakeStore, memoryCache } from './fakes.ts';

const served: Served = { key: 'sk-test-login', version: '7', secret: 'keys/alice', fetchedAt: 0, from: 'store' };
const READ = `key ${fingerprint('sk-test-login')} (version 7 of "keys/alice")`;

/** Login deps over a fake store (the developer is alice), whose refresh leaves `served` in a memory file cache. */
function setup(overrides: Partial<LoginDeps> = {}) {
  const said: string[] = [];
  const cache = memoryCache();
  let refreshes = 0;
  const deps: LoginDeps = {
    provider: new FakeStore().provider(),
    say: (line) => void said.push(line),
    openBrowser: async () => {},
    refresh: async () => {
      refreshes++;
      cache.data.set('default:abc', serializeEntry(served));
      return served;
    },
    cache,
    account: 'default:abc',
    ...overrides,
  };
  return { deps, said, cache, refreshes: () => refreshes };
}

describe('login', () => {
  it('a store whose own CLI logs in: says who the developer already is, refreshes, and says where the key is cached', async () => {
    const { deps, said } = setup();
    expect(await login(deps)).toEqual({ kind: 'cached', served });
    expect(said).toEqual(['already logged in to the fake store as alice', `cached ${READ} in the file cache`]);
  });

  it('not logged in to such a store: the CLI command to run and the store error, without reading the store', async () => {
    const notLoggedIn = new NotAuthenticated('not logged in to the fake store', 'run it');
    const provider = { ...new FakeStore().provider(), whoami: async () => Promise.reject(notLoggedIn) };
    const { deps, said, refreshes } = setup({ provider });
    expect(await login(deps)).toEqual({ kind: 'needs-cli-login', command: 'fake login', error: notLoggedIn });
    expect(said).toEqual([]);
    expect(refreshes()).toBe(0);
  });

  it('a store that cannot be asked who the developer is: that error, not a login command', async () => {
    const down = new StoreUnreachable('the fake store did not answer', 'try again');
    const { deps, refreshes } = setup({ provider: { ...new FakeStore().provider(), whoami: async () => Promise.reject(down) } });
    await expect(login(deps)).rejects.toBe(down);
    expect(refreshes()).toBe(0);
  });

  it('cache backend "none": the key was read and nothing is kept, said as such (not a failure)', async () => {
    const { deps, said } = setup();
    deps.cache = { ...deps.cache, kind: 'none' };
    expect(await login(deps)).toEqual({ kind: 'no-cache', served });
    expect(said.at(-1)).toBe(`read ${READ}; nothing is cached (cache backend "none"): every call reads the store`);
  });

  it('a key the cache does not give back is "not cached", with why and how to fix it', async () => {
    const { deps, said } = setup({ refresh: async () => served });
    const result = await login(deps);
    expect(result.kind).toBe('not-cached');
    const error = (result as { error: CacheUnavailable }).error;
    expect(error).toBeInstanceOf(CacheUnavailable);
    expect(error.line()).toBe(
      `read ${READ} but it was not cached in the file cache (the cache does not hold it): the next Claude Code call reads the store again:` +
        " fix the cache ('keybroker doctor' shows why), then run 'keybroker login' again",
    );
    expect(said.some((line) => line.startsWith('cached'))).toBe(false);
  });

  it('an older or unreadable entry in the cache is not the key just read', async () => {
    for (const held of [serializeEntry({ ...served, key: 'sk-test-older' }), 'not an entry']) {
      const { deps, cache } = setup();
      deps.refresh = async () => {
        cache.data.set('default:abc', held);
        return served;
      };
      expect((await login(deps)).kind).toBe('not-cached');
    }
  });

  it('a cache that cannot be read: its own reason in the message; any other error is thrown', async () => {
    const { deps } = setup();
    deps.cache = { ...deps.cache, read: async () => Promise.reject(new CacheUnavailable('the keychain is locked', 'unlock it')) };
    const result = await login(deps);
    expect(result.kind === 'not-cached' && result.error.message).toBe(
      `read ${READ} but it was not cached in the file cache (the keychain is locked): the next Claude Code call reads the store again`,
    );
    const bug = new TypeError('a bug');
    deps.cache = { ...deps.cache, read: async () => Promise.reject(bug) };
    await expect(login(deps)).rejects.toBe(bug);
  });

  it('a store with its own sign-in: runs it with the browser opener, then refreshes', async () => {
    const steps: string[] = [];
    const provider = {
      ...new FakeStore().provider(),
      async interactiveLogin(io: { say(line: string): void; openBrowser(url: string): Promise<void> }) {
        io.say('visit the page');
        await io.openBrowser('https://vault.test/ui/oidc');
      },
      whoami: async () => Promise.reject(new Error('whoami is not needed')),
    };
    const { deps } = setup({
      provider,
      say: (line) => void steps.push(line),
      openBrowser: async (url) => void steps.push(`browser ${url}`),
    });
    expect((await login(deps)).kind).toBe('cached');
    expect(steps).toEqual([
      'logging in to the fake store',
      'visit the page',
      'browser https://vault.test/ui/oidc',
      `cached ${READ} in the file cache`,
    ]);
  });
});
