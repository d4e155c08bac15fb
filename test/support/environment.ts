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
