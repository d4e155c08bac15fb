// The note a keychain call that never returned leaves for other runs (`keychain-hung` in the
// runtime folder): the message says whose finding it is, and a note dated ahead of this clock is
// not believed. No keychain is asked while the note holds.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keychainCache, keychainState } from '../../src/cache/keychain.ts';

let dir: string;
let marker: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-keychain-hung-'));
  marker = path.join(dir, 'keychain-hung');
  fs.writeFileSync(marker, 'then\n', { mode: 0o600 });
});
afterEach(() => {
  keychainState.hung = false;
  fs.rmSync(dir, { recursive: true, force: true });
});

function readAt(now: number, timeoutMs = 2_000): Promise<unknown> {
  return keychainCache({ env: { KEYBROKER_RUNTIME_DIR: dir }, platform: 'linux', now: () => now, timeoutMs })
    .read('default:x')
    .then(
      () => undefined,
      (error: Error) => error.message,
    );
}

describe('a keychain that did not answer', () => {
  it('another process\'s note of 300 ms ago is "another keybroker process found … 0 s ago", not "earlier in this run"', async () => {
    const written = fs.statSync(marker).mtimeMs;
    expect(await readAt(written + 300)).toBe(
      'another keybroker process found the Secret Service keyring not answering 0 s ago (it may be locked and waiting for a password); not asking it again for 5 min',
    );
    expect(await readAt(written + 42_000)).toMatch(/^another keybroker process found the Secret Service keyring not answering 42 s ago/);
  });

  it('this process\'s own finding is "earlier in this run"', async () => {
    keychainState.hung = true;
    expect(await readAt(Date.now())).toMatch(/^the Secret Service keyring did not answer earlier in this run \(it may be locked/);
  });

  it('a note dated ahead of this clock (the clock was set back) does not keep the keychain skipped', async () => {
    const future = new Date(Date.now() + 10 * 60_000);
    fs.utimesSync(marker, future, future);
    expect(await readAt(Date.now(), 200)).not.toMatch(/not asking it again/);
  });
});
