// `config init` asks once whether this machine has a keychain: undefined when it answers, else
// why not in plain words (what goes into the generated config's comment).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingKeychain } from '../../src/cache/keychain-probe.ts';
import { keychainCache } from '../../src/cache/keychain.ts';
import { memoryKeyring } from './memory-keyring.ts';

// A runtime folder of its own: no other run's note that the keychain hung is seen.
const env = { KEYBROKER_RUNTIME_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'kb-probe-')) };
afterAll(() => fs.rmSync(env.KEYBROKER_RUNTIME_DIR, { recursive: true, force: true }));

function probe(fail?: unknown): Promise<string | undefined> {
  const keyring = memoryKeyring();
  keyring.fail = fail;
  return missingKeychain(env, keychainCache({ env, platform: 'linux', keyring: keyring.module }));
}

describe('is there a keychain here', () => {
  it('one that answers a read: yes', async () => {
    expect(await probe()).toBeUndefined();
  });

  it('a session with no Secret Service: says so plainly', async () => {
    expect(await probe(new Error('Cannot autolaunch D-Bus without X11 $DISPLAY'))).toBe(
      'this session has no Secret Service: usual over SSH, in WSL and in containers',
    );
  });

  it('an error that is not about the keychain is thrown', async () => {
    const broken = { ...keychainCache({ env }), read: () => Promise.reject(new Error('a bug')) };
    await expect(missingKeychain(env, broken)).rejects.toThrow('a bug');
  });
});
