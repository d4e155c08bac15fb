// `keybroker login`: the interactive step `get` never takes, then a get that warms the cache.
import type { Provider } from '../../providers/provider.ts';
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { CacheUnavailable, NotAuthenticated } from '../kernel/errors.ts';
import { makePrivateDir, userRuntimeDir } from '../kernel/paths.ts';
import { fingerprint } from '../secret/value.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import { parseEntry } from '../cache/entry.ts';
import type { Served } from './broker.ts';

export interface LoginDeps {
  provider: Provider;
  say(line: string): void;
  openBrowser(url: string): Promise<void>;
  /** A get that skips the cache and stores what it reads. */
  refresh(): Promise<Served>;
  /** The profile's cache and its account there: read back to tell whether the key was kept. */
  cache: CacheStore;
  account: string;
}

export type LoginResult =
  | { kind: 'cached'; served: Served }
  /** The profile keeps no key (cache backend "none"): the key was read, nothing was to be kept. */
  | { kind: 'no-cache'; served: Served }
  | { kind: 'not-cached'; served: Served; error: CacheUnavailable }
  | { kind: 'needs-cli-login'; command: string; error: NotAuthenticated };

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
  const read = `key ${fingerprint(served.key)} (version ${served.version} of "${served.secret}")`;
  if (deps.cache.kind === 'none') {
    deps.say(`read ${read}; nothing is cached (cache backend "none"): every call reads the store`);
    return { kind: 'no-cache', served };
  }
  // "Cached" only when the cache gives the key back: a write that failed was only a warning to get.
  let held: string | undefined;
  let why = 'the cache does not hold it';
  try {
    const text = await deps.cache.read(deps.account);
    held = text && parseEntry(text)?.key;
  } catch (error) {
    if (!(error instanceof CacheUnavailable)) throw error;
    why = error.message;
  }
  if (held !== served.key) {
    const error = new CacheUnavailable(
      `read ${read} but it was not cached in the ${deps.cache.kind} cache (${why}): the next Claude Code call reads the store again`,
      "fix the cache ('keybroker doctor' shows why), then run 'keybroker login' again",
    );
    return { kind: 'not-cached', served, error };
  }
  deps.say(`cached ${read} in the ${deps.cache.kind} cache`);
  return { kind: 'cached', served };
}

export interface BrowserCommand {
  command: string;
  args: string[];
  /** For messages: "$BROWSER (w3m)", "xdg-open". */
  label: string;
}

/**
 * The programs that may open `url`, in order: each entry of $BROWSER (separated like PATH; `%s`
 * stands for the URL, otherwise it is the last argument, as xdg-open and Python's webbrowser read
 * it), then the desktop's own opener.
 */
export function browserCommands(url: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): BrowserCommand[] {
  const fromEnv = (env['BROWSER'] ?? '')
    .split(platform === 'win32' ? ';' : ':')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry): BrowserCommand => {
      const [command, ...words] = entry.split(/\s+/) as [string, ...string[]];
      const placeholder = words.some((word) => word.includes('%s'));
      const args = words.map((word) => word.replace(/%[s%]/g, (match) => (match === '%s' ? url : '%')));
      return { command, args: placeholder ? args : [...args, url], label: `$BROWSER (${command})` };
    });
  const desktop: BrowserCommand =
    platform === 'darwin'
      ? { command: 'open', args: [url], label: 'open' }
      : platform === 'win32'
        ? // Not `cmd /c start`: cmd would cut the URL at its first '&'.
          { command: 'rundll32', args: ['url.dll,FileProtocolHandler', url], label: 'the default browser' }
        : { command: 'xdg-open', args: [url], label: 'xdg-open' };
  return [...fromEnv, desktop];
}

/** `text` safe inside an HTML attribute or element. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** A page that sends the browser on to `url` at once (meta refresh, script, and a link to click). */
export function signInPage(url: string): string {
  const attribute = escapeHtml(url);
  const script = JSON.stringify(url).replace(/</g, '\\u003c');
  return [
    '<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">',
    `<meta http-equiv="refresh" content="0;url=${attribute}"><title>keybroker sign-in</title></head>`,
    `<body><p>Going on to your sign-in page: <a id="continue" href="${attribute}">continue</a></p>`,
    `<script>location.replace(${script})</script></body></html>`,
    '',
  ].join('\n');
}

/**
 * The sign-in address in a 0600 page in the developer's private runtime folder, removed when
 * keybroker exits: a command line is readable by every local user (ps), a state and PKCE
 * challenge there would let one hijack the sign-in. Undefined when no private folder is usable.
 */
export function writeSignInPage(url: string, env: NodeJS.ProcessEnv, debug: (message: string) => void): string | undefined {
  const dir = path.join(userRuntimeDir(env), 'sign-in');
  const problem = makePrivateDir(dir);
  if (problem) {
    debug(`sign-in page: ${problem}`);
    return undefined;
  }
  const file = path.join(dir, `${randomUUID()}.html`);
  try {
    // Stryker disable next-line StringLiteral: equivalent, no file can be waiting under a fresh random name in our 0700 folder
    fs.writeFileSync(file, signInPage(url), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    debug(`sign-in page: cannot write ${file} (${(error as NodeJS.ErrnoException).code})`);
    return undefined;
  }
  process.once('exit', () => fs.rmSync(file, { force: true }));
  return file;
}

/**
 * Hands the sign-in address to the first of browserCommands() that starts, without waiting for
 * it (a browser may run for hours), as a file:// page that holds it: never the address itself in
 * argv. Says which program, or that the person must open the printed address themselves.
 */
export async function openInBrowser(
  url: string,
  options: { env: NodeJS.ProcessEnv; say(line: string): void; debug(message: string): void; platform?: NodeJS.Platform },
): Promise<void> {
  const page = writeSignInPage(url, options.env, options.debug);
  if (!page) {
    options.say('no private folder for the sign-in page (see --verbose): open the address above in a browser on this machine');
    return;
  }
  const { spawn } = await import('node:child_process');
  for (const candidate of browserCommands(pathToFileURL(page).href, options.env, options.platform)) {
    const started = await new Promise<true | string>((resolve) => {
      // One argument, never through a shell.
      const child = spawn(candidate.command, candidate.args, {
        stdio: 'ignore',
        detached: true,
        env: options.env,
        // Stryker disable next-line BooleanLiteral: only a console window flashing up on Windows tells it, which no test can see
        windowsHide: true,
      });
      child.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      child.once('spawn', () => {
        child.once('exit', (code) => {
          if (code) options.say(`${candidate.label} could not open a browser (exit ${code}): open the address above yourself`);
        });
        child.unref();
        resolve(true);
      });
    });
    if (started === true) {
      options.say(`opened the address with ${candidate.label}`);
      return;
    }
    options.debug(`${candidate.label}: ${candidate.command} could not be started (${started})`);
  }
  options.say('no browser could be opened (set BROWSER to one): open the address above in a browser on this machine');
}
