// The Mach-O signature checker (release/macho.ts) is known to be right because it accepts Apple's
// own signatures on the official Node darwin binaries (pinned in release/pins.json) and refuses
// them after one changed byte; the ad-hoc signer's output passes the same checker.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedFile, readPins } from '../../release/fetch.ts';
import { sign, verify } from '../../release/macho.ts';

const pins = readPins();
let dir: string;
const official: Record<string, Buffer> = {};
const signed: Record<string, Buffer> = {};

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-macho-'));
  for (const target of ['darwin-arm64', 'darwin-x64'] as const) {
    official[target] = fs.readFileSync(pinnedFile(pins.node.targets[target], pins.node.version, path.join(dir, target)));
    signed[target] = sign(official[target], 'keybroker');
  }
}, 600_000);

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the Mach-O signature checker', () => {
  it.each(['darwin-arm64', 'darwin-x64'])("accepts Apple's signature on the official Node %s binary", (target) => {
    const report = verify(official[target]!);
    // Node's releases are signed by the Node.js Foundation's Developer ID team.
    expect(report).toMatchObject({ valid: true, kind: 'cms', identifier: 'node', teamId: 'HX7739G8FX', problems: [] });
  });

  it('refuses the official binary with one byte changed in its code', () => {
    const changed = Buffer.from(official['darwin-arm64']!);
    changed[0x100000]! ^= 0x01;
    const report = verify(changed);
    expect(report.valid).toBe(false);
    expect(report.problems).toEqual([expect.stringMatching(/^1 of \d+ pages do not match their sha256 hash$/)]);
  });

  it('refuses a binary whose signature covers less than the code (bytes appended after signing)', () => {
    // Move the signature's start: the CodeDirectory no longer covers exactly the code before it.
    const moved = Buffer.from(signed['darwin-x64']!);
    let at = 32;
    for (let i = 0; i < moved.readUInt32LE(16); i++) {
      if (moved.readUInt32LE(at) === 0x1d) moved.writeUInt32LE(moved.readUInt32LE(at + 8) + 16, at + 8);
      at += moved.readUInt32LE(at + 4);
    }
    expect(() => verify(moved)).toThrow();
  });
});

describe('the ad-hoc signer', () => {
  it.each(['darwin-arm64', 'darwin-x64'])('re-signs the %s binary ad hoc, and the checker accepts it', (target) => {
    const report = verify(signed[target]!);
    expect(report).toMatchObject({ valid: true, kind: 'adhoc', identifier: 'keybroker', problems: [], hashTypes: [2] });
    expect(report.teamId).toBeUndefined();
    // __LINKEDIT and the file end where the new signature does.
    expect(signed[target]!.length).toBeLessThan(official[target]!.length);
  });

  it('signs what the file holds: a page changed after signing is caught', () => {
    const changed = Buffer.from(signed['darwin-arm64']!);
    changed[0x200000]! ^= 0x80;
    expect(verify(changed).problems).toEqual([expect.stringMatching(/^1 of \d+ pages do not match their sha256 hash$/)]);
  });

  it('is deterministic: the same input signs to the same bytes', () => {
    expect(sign(official['darwin-x64']!, 'keybroker').equals(signed['darwin-x64']!)).toBe(true);
  });
});
