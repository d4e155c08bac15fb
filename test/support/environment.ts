import type { Provider } from '../../providers/provider.ts';

// SDK credential chains read process.env themselves (in the binary, a command's env is
// process.env), so a test that speaks as one identity runs its calls with that environment.
export async function withEnvironment<T>(env: NodeJS.ProcessEnv, call: () => Promise<T>): Promise<T> {
  const saved = process.env;
  process.env = { ...env };
  try {
    return await call();
  } finally {
    process.env = saved;
  }
}

/** The provider, with every call made in `env` (a listing is read whole inside it). */
export function inEnvironment(env: NodeJS.ProcessEnv, provider: Provider): Provider {
  return {
    describe: () => provider.describe(),
    loginCommand: () => provider.loginCommand(),
    whoami: () => withEnvironment(env, () => provider.whoami()),
    readCurrent: (name) => withEnvironment(env, () => provider.readCurrent(name)),
    write: (name, value, options) => withEnvironment(env, () => provider.write(name, value, options)),
    revoke: (name, options) => withEnvironment(env, () => provider.revoke(name, options)),
    async *list(prefix) {
      const all = await withEnvironment(env, async () => {
        const items = [];
        for await (const item of provider.list(prefix)) items.push(item);
        return items;
      });
      yield* all;
    },
  };
}
