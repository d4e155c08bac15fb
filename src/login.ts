// `keybroker login`: the interactive step `get` never takes, then a get that warms the cache.
import type { Provider } from '../providers/provider.ts';
import { NotAuthenticated } from './errors.ts';
import { fingerprint } from './key-value.ts';
import type { Served } from './broker.ts';

export interface LoginDeps {
  provider: Provider;
  say(line: string): void;
  openBrowser(url: string): Promise<void>;
  /** A get that skips the cache and stores what it reads. */
  refresh(): Promise<Served>;
}

export type LoginResult = { kind: 'cached'; served: Served } | { kind: 'needs-cli-login'; command: string; error: NotAuthenticated };

export async function login(deps: LoginDeps): Promise<LoginResult> {
  const { provider } = deps;
  if (provider.interactiveLogin) {
    deps.say(`logging in to ${provider.describe()}`);
    await provider.interactiveLogin({ say: deps.say, openBrowser: deps.openBrowser });
  } else {
    // The ecosystem's own CLI owns the login; keybroker then reads what it leaves behind.
    try {
      const identity = await provider.whoami();
      deps.say(`already logged in to ${provider.describe()} as ${identity.principal}`);
    } catch (error) {
      if (!(error instanceof NotAuthenticated)) throw error;
      return { kind: 'needs-cli-login', command: provider.loginCommand(), error };
    }
  }
  const served = await deps.refresh();
  deps.say(`cached key ${fingerprint(served.key)} (version ${served.version} of "${served.secret}")`);
  return { kind: 'cached', served };
}

/** The desktop's browser; when there is none, the person opens the URL. */
export async function openInBrowser(url: string, say: (line: string) => void): Promise<void> {
  const [command, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  const { spawn } = await import('node:child_process');
  await new Promise<void>((resolve) => {
    const child = spawn(command as string, args as string[], { stdio: 'ignore', detached: true });
    child.on('error', () => {
      say(`open this address in your browser: ${url}`);
      resolve();
    });
    child.on('spawn', () => {
      child.unref();
      say(`opened your browser; if it did not appear, open: ${url}`);
      resolve();
    });
  });
}
