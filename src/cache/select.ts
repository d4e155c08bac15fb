// Picks the cache for a profile. `auto` uses the keychain when it answers; where it does not,
// it uses the configured fallback (no cache unless "fallback": "file") and says so once.
import fs from 'node:fs';
import path from 'node:path';
import type { CacheBackendName } from '../config/config.ts';
import { CacheUnavailable } from '../kernel/errors.ts';
import { keyFilesDir, makePrivateDir, unusableFolder, userCacheDir } from '../kernel/paths.ts';
import { noCache, type CacheStore } from './cache-store.ts';
import { fileCache } from './file.ts';
import { keychainCache } from './keychain.ts';

export interface CacheChoice {
  backend: CacheBackendName;
  fallback: 'none' | 'file';
  env: NodeJS.ProcessEnv;
  /** One stderr line for a person. */
  warn(line: string): void;
  /** Takes the fallback notice to say once the command succeeded; absent: said at once. */
  holdNotice?(say: () => void): void;
  keychain?: CacheStore;
}

export function openCache(choice: CacheChoice): CacheStore {
  switch (choice.backend) {
    case 'none':
      return noCache;
    case 'file':
      return fileCache(keyFilesDir(choice.env));
    case 'keychain':
      return required(choice.keychain ?? keychainCache({ env: choice.env }));
    case 'auto':
      return autoCache(choice.keychain ?? keychainCache({ env: choice.env }), choice);
  }
}

/** A backend the profile named: its failure is exit 9 (README "Exit codes"), never a silent store read. */
function required(store: CacheStore): CacheStore {
  return {
    kind: store.kind,
    required: true,
    read: (account) => store.read(account),
    write: (account, data) => store.write(account, data),
    remove: (account) => store.remove(account),
  };
}

/** The keychain, until its first failure; then the fallback for the rest of this run. */
function autoCache(keychain: CacheStore, choice: CacheChoice): CacheStore {
  let current: CacheStore = keychain;
  const fallback = choice.fallback === 'file' ? fileCache(keyFilesDir(choice.env)) : noCache;

  function fallBack(error: CacheUnavailable): CacheStore {
    if (current === keychain) {
      current = fallback;
      announceOnce(error, choice);
    }
    return current;
  }
  async function attempt<T>(call: (store: CacheStore) => Promise<T>): Promise<T> {
    if (current !== keychain) return call(current);
    try {
      return await call(keychain);
    } catch (error) {
      if (!(error instanceof CacheUnavailable)) throw error;
      return call(fallBack(error));
    }
  }
  return {
    get kind() {
      return current.kind;
    },
    read: (account) => attempt((store) => store.read(account)),
    write: (account, data) => attempt((store) => store.write(account, data)),
    remove: (account) => attempt((store) => store.remove(account)),
  };
}

/** Says once per machine state (a marker in the cache folder) what `auto` did instead, and the fix. */
function announceOnce(error: CacheUnavailable, choice: CacheChoice): void {
  const dir = userCacheDir(choice.env);
  const marker = path.join(dir, `auto-fallback-${choice.fallback}.notice`);
  // A relative folder's marker would be the repository's to plant: the notice is then said each time.
  if (!unusableFolder(dir) && fs.existsSync(marker)) return;
  const instead =
    choice.fallback === 'file'
      ? `caching the key in a private file under ${keyFilesDir(choice.env)} instead ("fallback": "file")`
      : 'not caching the key (each call reads the store): set "cache": {"fallback": "file"} in the profile to cache it in a private file (0600), or "backend": "none" to say no cache is wanted';
  const say = () => {
    choice.warn(`keybroker: no usable keychain (${plainKeychainReason(error.message)}); ${instead}`);
    rememberNotice(dir, marker, error);
  };
  // Held until the command succeeded: a failure's one line is the only line.
  if (choice.holdNotice) choice.holdNotice(say);
  else say();
}

/** A D-Bus error speaks of X11 and autolaunch; what the developer needs is that there is no keyring here. */
export function plainKeychainReason(message: string): string {
  if (/X11|\$DISPLAY|autolaunch|dbus|d-bus/i.test(message))
    return 'this session has no Secret Service: usual over SSH, in WSL and in containers';
  if (/Secret Service: no result found/i.test(message)) return 'no keyring answers on this session bus: start gnome-keyring or KeePassXC';
  return message;
}

function rememberNotice(dir: string, marker: string, error: CacheUnavailable): void {
  if (makePrivateDir(dir)) return;
  try {
    fs.writeFileSync(marker, `${new Date().toISOString()} ${error.message}\n`, { mode: 0o600 });
  } catch {
    // Not being able to remember the notice only means it is said again next time.
  }
}
