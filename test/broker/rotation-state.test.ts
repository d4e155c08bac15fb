// What `get` remembers between runs lives in private files and never holds the key.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { fingerprint } from '../../src/secret/value.ts';
import { fileRotationState } from '../../src/broker/rotation-state.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

it('keeps served records, re-check verdicts and failures in 0600 files of a 0700 folder, with a fingerprint instead of the key', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-state-'));
  dirs.push(root);
  const dir = path.join(root, 'state');
  const state = fileRotationState(dir);
  state.recordServed('default:abc', 'proc:10:5000', { fingerprint: fingerprint('sk-test-secret-value'), version: 'v1', at: 1 });
  state.recordRecheck('default:abc', { at: 2, fingerprint: fingerprint('sk-test-secret-value'), verdict: 'same' });
  state.recordStoreFailure('default:abc', { at: 3, kind: 'StoreUnreachable', message: 'down', fix: 'wait' });

  const reopened = fileRotationState(dir);
  expect(reopened.servedTo('default:abc', 'proc:10:5000')).toMatchObject({ version: 'v1', at: 1 });
  expect(reopened.servedTo('default:abc', 'proc:10:5001')).toBeUndefined();
  expect(reopened.lastRecheck('default:abc')?.verdict).toBe('same');
  expect(reopened.lastStoreFailure('default:abc')?.kind).toBe('StoreUnreachable');
  reopened.recordStoreFailure('default:abc', undefined);
  expect(reopened.lastStoreFailure('default:abc')).toBeUndefined();

  expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).not.toContain('sk-test-secret-value');
  }
});

it('stays quiet (and remembers nothing) where its folder cannot be created', () => {
  const state = fileRotationState('/proc/keybroker-state');
  state.recordServed('a', 'b', { fingerprint: 'sha256:00000000', version: 'v', at: 1 });
  expect(state.servedTo('a', 'b')).toBeUndefined();
});
