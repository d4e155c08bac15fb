// The OS keychain through @napi-rs/keyring (Secret Service pinned on Linux, never the
// session-only kernel keyring). Every call is bounded: a locked desktop keyring can wait
// on an unlock prompt forever, and Claude Code waits on us.
import { CacheUnavailable } from '../kernel/errors.ts';
import { loadKeyring } from '../loader/chunks.ts';
import { KEYCHAIN_SERVICE, type CacheStore } from './cache-store.ts';
import { makePrivateDir, unusableFolder, userRuntimeDir } from '../kernel/paths.ts';
import { FILE_TIME_GRACE_MS, recordAgeMs } from '../kernel/record-age.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { AsyncEntry } from '@napi-rs/keyring';

const KEYCHAIN_TIMEOUT_MS = 2_000;
/** After a call that never returned, other runs skip the keychain this long instead of waiting again. */
const KEYCHAIN_HUNG_SKIP_MS = 5 * 60_000;

/** Set when a keychain call never returned: the process must then exit without waiting on it. */
// Stryker disable next-line ObjectLiteral: equivalent, an unset `hung` reads as false until a call hangs
export const keychainState = { hung: false };

function keychainName(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return 'the macOS Keychain';
  if (platform === 'win32') return 'the Windows Credential Manager';
  return 'the Secret Service keyring';
}

function unavailableFix(platform: NodeJS.Platform): string {
  if (platform === 'linux') {
    return 'unlock your login keyring (or start gnome-keyring/KeePassXC), or set "cache": {"backend": "file"} in the profile';
  }
  return 'unlock your keychain, or set "cache": {"backend": "file"} in the profile';
}

/** What keybroker uses of @napi-rs/keyring. */
export interface Keyring {
  AsyncEntry: new (
    service: string,
    account: string,
    options: { linux: { store: 'secret-service' } },
  ) => Pick<AsyncEntry, 'getPassword' | 'setPassword' | 'deleteCredential'>;
  findCredentialsAsync(service: string): Promise<{ account: string }[]>;
}

export interface KeychainOptions {
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
  platform?: NodeJS.Platform;
  now?(): number;
  /** The keyring module (default: the addon, loaded on first use); tests give an in-memory one. */
  keyring?(): Promise<Keyring>;
}

export interface KeychainCache extends CacheStore {
  /** Every account keybroker has an item for (service "keybroker"). */
  accounts(): Promise<string[]>;
}

export function keychainCache(options: KeychainOptions): KeychainCache {
  const platform = options.platform ?? process.platform;
  const timeoutMs = options.timeoutMs ?? KEYCHAIN_TIMEOUT_MS;
  const name = keychainName(platform);

  async function loadBinding(): Promise<Keyring> {
    try {
      return await (options.keyring ? options.keyring() : loadKeyring(options.env));
    } catch (error) {
      throw new CacheUnavailable(
        `cannot load the keychain library (${(error as Error).message})`,
        'set "cache": {"backend": "file"} in the profile',
        { cause: error },
      );
    }
  }
  async function entry(account: string) {
    const binding = await loadBinding();
    return new binding.AsyncEntry(KEYCHAIN_SERVICE, account, { linux: { store: 'secret-service' } });
  }

  const hungMarker = path.join(userRuntimeDir(options.env), 'keychain-hung');
  const now = options.now ?? Date.now;

  async function bounded<T>(what: string, call: () => Promise<T>): Promise<T> {
    const hungAgo = keychainState.hung ? 0 : (markerAge(hungMarker, now()) ?? Infinity);
    if (hungAgo < KEYCHAIN_HUNG_SKIP_MS) {
      // keychainState.hung is this process's own finding; the marker file is another process's.
      const seen = keychainState.hung
        ? `${name} did not answer earlier in this run`
        : `another keybroker process found ${name} not answering ${Math.round(hungAgo / 1_000)} s ago`;
      throw new CacheUnavailable(
        `${seen} (it may be locked and waiting for a password); not asking it again for ${KEYCHAIN_HUNG_SKIP_MS / 60_000} min`,
        unavailableFix(platform),
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        keychainState.hung = true;
        rememberHang(hungMarker);
        reject(
          new CacheUnavailable(
            `${name} did not answer within ${timeoutMs} ms (${what}); it may be locked and waiting for a password`,
            unavailableFix(platform),
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([call(), timeout]);
    } catch (error) {
      if (error instanceof CacheUnavailable) throw error;
      throw new CacheUnavailable(`${name} is not usable (${describe(error)})`, unavailableFix(platform), { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    kind: 'keychain',
    read: (account) => bounded('read', async () => (await (await entry(account)).getPassword()) ?? undefined),
    write: (account, data) => bounded('write', async () => (await entry(account)).setPassword(data)),
    remove: (account) => bounded('delete', async () => (await entry(account)).deleteCredential()),
    accounts: () =>
      bounded('list', async () => {
        const binding = await loadBinding();
        return (await binding.findCredentialsAsync(KEYCHAIN_SERVICE)).map((credential) => credential.account);
      }),
  };
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.slice(0, 200);
}

/** How long ago the marker was written; undefined when there is none, or it is from the future or in a relative folder. */
function markerAge(file: string, now: number): number | undefined {
  if (unusableFolder(path.dirname(file))) return undefined;
  let writtenAt: number;
  // Stryker disable BlockStatement: equivalent, without the catch's return `writtenAt` stays undefined, which has no age either
  try {
    writtenAt = fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  // Stryker restore BlockStatement
  return recordAgeMs(writtenAt, now, FILE_TIME_GRACE_MS);
}

function rememberHang(file: string): void {
  if (makePrivateDir(path.dirname(file))) return;
  try {
    // Stryker disable next-line StringLiteral: equivalent, the marker's age is its mtime; its text is only for a person looking
    fs.writeFileSync(file, `${new Date().toISOString()}\n`, { mode: 0o600 });
  } catch {
    // Without the marker the next run waits for the keychain once more; nothing worse.
  }
}
