// What `get` remembers between runs lives in private files and never holds the key.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { fingerprint } from '../../src/secret/value.ts';
import { skipOn } from '../support/platform.ts';
import { fileRotationState, memoryRotationState } from '../../src/broker/rotation-state.ts';

const HOUR = 3_600_000;

/** A fresh state folder inside a fresh runtime folder, removed after the test. */
function stateDir(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-state-'));
  dirs.push(root);
  return path.join(root, 'state');
}

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
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

it('keeps one record per account and caller: no two pairs share a file, and each fact has its own', () => {
  for (const state of [fileRotationState(stateDir()), memoryRotationState()]) {
    state.recordServed('ab', 'c', { fingerprint: 'sha256:00000001', version: 'v1', at: 1 });
    state.recordServed('a', 'bc', { fingerprint: 'sha256:00000002', version: 'v2', at: 2 });
    expect(state.servedTo('ab', 'c')?.version).toBe('v1');
    expect(state.servedTo('a', 'bc')?.version).toBe('v2');
    state.recordRecheck('ab', { at: 3, fingerprint: 'sha256:00000003', verdict: 'rejected', gateway: 'http://gw.test' });
    state.recordStoreFailure('ab', { at: 4, kind: 'StoreUnreachable', message: 'down', fix: 'wait' });
    state.recordRefreshAhead('ab', 5);
    expect(state.lastRecheck('ab')).toEqual({ at: 3, fingerprint: 'sha256:00000003', verdict: 'rejected', gateway: 'http://gw.test' });
    expect(state.lastStoreFailure('ab')).toEqual({ at: 4, kind: 'StoreUnreachable', message: 'down', fix: 'wait' });
    expect(state.lastRefreshAhead('ab')).toBe(5);
    expect([state.lastRecheck('a'), state.lastStoreFailure('a'), state.lastRefreshAhead('a')]).toEqual([undefined, undefined, undefined]);
    state.recordStoreFailure('ab', undefined);
    expect(state.lastStoreFailure('ab')).toBeUndefined();
  }
});

it('a record that is not JSON reads as none', () => {
  const dir = stateDir();
  const state = fileRotationState(dir);
  state.recordRefreshAhead('a', 5);
  const [file] = fs.readdirSync(dir);
  fs.writeFileSync(path.join(dir, file!), '{"at":', { mode: 0o600 });
  expect(state.lastRefreshAhead('a')).toBeUndefined();
});

const NOT_ROOT = process.getuid?.() === 0 ? [] : [process.platform];

it.skipIf(skipOn(NOT_ROOT, 'gives a folder to another user (chown needs root)', import.meta.filename))(
  'trusts nothing in, and writes nothing to, a state folder whose runtime folder is another user',
  () => {
    const dir = stateDir();
    fileRotationState(dir).recordRefreshAhead('a', 5);
    fs.chownSync(path.dirname(dir), 65534, 65534);
    const state = fileRotationState(dir);
    expect(state.lastRefreshAhead('a')).toBeUndefined();
    state.recordRefreshAhead('b', 6);
    expect(fs.readdirSync(dir)).toHaveLength(1);
  },
);

it('about one write of a served record in fifty sweeps served records older than a day, and only those', () => {
  const dir = stateDir();
  const now = Date.parse('2026-11-27T09:00:00Z');
  const state = fileRotationState(dir, () => now);
  const random = vi.spyOn(Math, 'random').mockReturnValue(0.5);
  const names = () => new Set(fs.readdirSync(dir));
  const setAge = (name: string, ms: number) => fs.utimesSync(path.join(dir, name), new Date(now - ms), new Date(now - ms));
  state.recordServed('a', 'old', { fingerprint: 'sha256:00000001', version: 'v1', at: 1 });
  state.recordRecheck('a', { at: 1, fingerprint: 'sha256:00000001', verdict: 'same' });
  for (const name of names()) setAge(name, 24 * HOUR + 1_000);
  const before = names();
  state.recordServed('a', 'day', { fingerprint: 'sha256:00000001', version: 'v1', at: 1 });
  setAge([...names()].find((name) => !before.has(name))!, 24 * HOUR);

  random.mockReturnValue(0.021);
  state.recordServed('b', 'new', { fingerprint: 'sha256:00000002', version: 'v2', at: 2 });
  expect(state.servedTo('a', 'old')).toBeDefined();

  random.mockReturnValue(0.02);
  state.recordServed('b', 'new', { fingerprint: 'sha256:00000002', version: 'v2', at: 2 });
  expect(state.servedTo('a', 'old')).toBeUndefined();
  expect(state.servedTo('a', 'day')).toBeDefined();
  expect(state.servedTo('b', 'new')).toBeDefined();
  expect(state.lastRecheck('a')).toBeDefined();
});
