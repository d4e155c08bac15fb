// The wine root runs its programs as root in a chroot (release:check): a root, or a directory above
// it, that another user could write to is refused, not used.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readyWine, untrustedDirectory } from '../../release/wine.ts';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A finished-looking root at parent/root, as release/wine.ts leaves one. */
function finishedRoot(parentMode = 0o700): string {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-wine-root-'));
  made.push(parent);
  fs.chmodSync(parent, parentMode);
  const root = path.join(parent, 'root');
  fs.mkdirSync(root, { mode: 0o755 });
  fs.chmodSync(root, 0o755);
  fs.writeFileSync(path.join(root, '.keybroker-wine-ready'), 'wine-10.0 (Debian 10.0~repack-6)\n');
  return root;
}

describe('the wine root', () => {
  it('is used when it and every directory above it are writable only by root or this user (a sticky /tmp above is fine)', () => {
    const root = finishedRoot();
    expect(untrustedDirectory(root)).toBeUndefined();
    expect(readyWine(root)).toBe('wine-10.0 (Debian 10.0~repack-6)');
  });

  it('is refused when anyone can write to it, saying how to make a new one', () => {
    const root = finishedRoot();
    fs.chmodSync(root, 0o777);
    expect(() => readyWine(root)).toThrow(
      /is not safe to use: .* is writable by everyone \(mode 777\)\. Remove it \(rm -rf .*\) and run again/,
    );
  });

  it('is refused when a directory above it is writable by its group and not sticky', () => {
    const root = finishedRoot(0o770);
    expect(untrustedDirectory(root)).toMatch(/kb-wine-root-.* is writable by its group \(mode 770\)/);
    expect(() => readyWine(root)).toThrow(/not safe to use/);
  });

  it('is refused when it belongs to another user', () => {
    const root = finishedRoot();
    // As root, the root is given away; as another user, it is judged as if this were uid 4242.
    if (process.getuid?.() === 0) fs.chownSync(root, 4242, 4242);
    const uid = process.getuid?.() === 0 ? 0 : 4241;
    expect(untrustedDirectory(root, uid)).toMatch(/belongs to uid \d+, not to root or this user/);
  });
});
