import fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { maskSecrets } from '../../src/kernel/output.ts';

// What reaches stderr (error lines, warnings, the debug trace), doctor's report, admin summaries
// and the audit never holds a key, whatever the key's vendor prefix: one mask for all of them.
describe('maskSecrets', () => {
  const keys = [
    'sk-test-0123456789abcdef',
    'glpat-TESTONLY0a1b2c3d4e5f6g7h',
    'TESTONLYx9Q2mZ7pL4vR8kT1wY6n', // no prefix at all
    'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0LW9ubHktdXNlciJ9.c2lnbmF0dXJlLXRlc3Qtb25seQ', // a JWT
    'aGVsbG8tdGVzdC1vbmx5LWJhc2U2NA==', // base64
  ];

  for (const key of keys) {
    it(`masks ${key.slice(0, 6)}… in a sentence, none of its long runs left`, () => {
      const masked = maskSecrets(`request failed: {"api_key":"${key}"} at step 2`);
      expect(masked).not.toContain(key);
      for (const run of key.split(/[^A-Za-z0-9_\-+/=]/).filter((part) => part.length >= 12)) expect(masked).not.toContain(run);
      expect(masked).toContain('request failed');
      expect(masked).toContain('at step 2');
    });
  }

  it('masks a value the caller knows even when it looks like nothing', () => {
    expect(maskSecrets('the key was plainword here', ['plainword'])).toBe('the key was ‹key› here');
  });

  it('leaves ordinary words, paths, numbers and exit codes readable', () => {
    const line =
      'cannot reach https://secretsmanager.us-east-1.amazonaws.com after 3 tries (exit 7): ECONNREFUSED /home/dev/.config/keybroker/config.json';
    expect(maskSecrets(line)).toBe(line);
  });
});

describe('maskSecrets on addresses', () => {
  it('keeps a URL path readable and masks a key in its query', () => {
    const masked = maskSecrets('307 redirect to https://login.example.invalid/v1/models?token=TESTONLYx9Q2mZ7pL4vR8kT1');
    expect(masked).toContain('https://login.example.invalid/v1/models?');
    expect(masked).not.toContain('x9Q2mZ7pL4vR8kT1');
  });

  it('masks a base64 key that holds a slash', () => {
    expect(maskSecrets('value aGVsbG8/dGVzdC1vbmx5LWJhc2U2NA== end')).toBe('value … end');
  });
});

describe('maskSecrets on names that must stay readable', () => {
  it('keeps absolute paths whose folders are temporary names, and masks a key that is one part of a path', () => {
    const line = 'project settings /tmp/kb-doctor-i6HSRA/project/.claude/settings.json set it';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('read /v1/keys/TESTONLYx9Q2mZ7pL4vR8kT1wY6n/info')).not.toContain('x9Q2mZ7pL4vR8kT1');
  });

  it('keeps words after key- and token- (check ids, endpoints), masks key-/token- with a digit in it', () => {
    const line = 'claude.api-key-helper: the token-endpoint of the key-issuer';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('mailgun key-3ax6xnjp29jd6fds refused')).toBe('mailgun key… refused');
    expect(maskSecrets('sk-test-ahead-one refused')).toBe('sk-… refused');
  });

  it('keeps model names (lower-case words and numbers joined by -), masks a key shaped like one with mixed parts', () => {
    const line = 'claude-sonnet-4-5-20250929: 404 model not routed; claude-3-5-haiku-latest: 200';
    expect(maskSecrets(line)).toBe(line);
    expect(maskSecrets('key 550e8400-e29b-41d4-a716-446655440000 refused')).toBe('key … refused');
    expect(maskSecrets('token a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6 refused')).toBe('token … refused');
  });
});

describe('maskSecrets at its boundaries', () => {
  it('masks a run of 16 key characters with a letter and a digit, not one of 15', () => {
    expect(maskSecrets('run a1b2c3d4e5f6g7h here')).toBe('run a1b2c3d4e5f6g7h here');
    expect(maskSecrets('run a1b2c3d4e5f6g7h8 here')).toBe('run … here');
  });

  it('keeps a long run of letters only or digits only (a word, a timestamp)', () => {
    expect(maskSecrets('internationalization at 17649876543210987')).toBe('internationalization at 17649876543210987');
  });

  it('masks sk- with 6 key characters after it, not 5, and only at the start of a word', () => {
    expect(maskSecrets('sk-abcde sk-abcdef SK-TESTabcdef1')).toBe('sk-abcde sk-… SK-…');
    expect(maskSecrets('the disk-cache1 is full')).toBe('the disk-cache1 is full');
    expect(maskSecrets('token-abc123 and key-a1b2c3')).toBe('tok… and key…');
  });

  it('masks a value the caller knows of 4 characters or more, everywhere it appears', () => {
    expect(maskSecrets('abc is abcd, abcd', ['abc', 'abcd'])).toBe('abc is ‹key›, ‹key›');
  });

  it("keeps a path's parts under 16 characters (24 in an absolute path), masks a longer one", () => {
    expect(maskSecrets('ab/a1b2c3d4e5f6g7h/x')).toBe('ab/a1b2c3d4e5f6g7h/x');
    expect(maskSecrets('ab/a1b2c3d4e5f6g7h8/x')).toBe('…');
    expect(maskSecrets('/home/a1b2c3d4e5f6g7h8i9j0k1l/x')).toBe('/home/a1b2c3d4e5f6g7h8i9j0k1l/x');
    expect(maskSecrets('/home/a1b2c3d4e5f6g7h8i9j0k1l2/x')).toBe('…');
  });

  it('keeps only lower-case model names: an upper-case letter or a mixed part is masked', () => {
    expect(maskSecrets('Claude-sonnet-4-5-20250929')).toBe('…');
    expect(maskSecrets('claude-3-5-haiku-20241022x')).toBe('…');
    expect(maskSecrets('a-b-c-d-e-f-g-h-1-2')).toBe('a-b-c-d-e-f-g-h-1-2');
    expect(maskSecrets('20250929-preview-model')).toBe('20250929-preview-model');
  });
});

describe('a variable and its value', () => {
  it('keeps the name of NAME_OF_VARIABLE=value and judges the value alone', () => {
    expect(maskSecrets('CI_DEBUG_TRACE=1 turns the trace on')).toBe('CI_DEBUG_TRACE=1 turns the trace on');
    expect(maskSecrets('LITELLM_MASTER_KEY=Zx81mQ27pL04aB9cD3eF is set')).toBe('LITELLM_MASTER_KEY=… is set');
    // A value under 16 characters is not judged a key, even where the whole run is long.
    expect(maskSecrets('KEYBROKER_PROFILE=dev2 MY_VAR=a1b2c3d4e5f6g7h')).toBe('KEYBROKER_PROFILE=dev2 MY_VAR=a1b2c3d4e5f6g7h');
    expect(maskSecrets('MY_VAR=a1b2c3d4e5f6g7h8')).toBe('MY_VAR=…');
    // A name only at the start of the run: the text before it is not dropped.
    expect(maskSecrets('set-MY_VAR=a1b2c3d4e5f6g7h8')).toBe('…');
    // Base64 padding is not an assignment: the whole run is judged.
    expect(maskSecrets('QUJDREVGR0gxMjM0NTY3OA==')).toBe('…');
  });
});

// processOutput against what the OS reports about fd 1 and 2 (fs answers faked per descriptor, every
// other call passed through): the bytes that reach stdout, and the one line a failure becomes.
describe('processOutput', () => {
  const realFs = { writeSync: fs.writeSync, fstatSync: fs.fstatSync, statSync: fs.statSync, readFileSync: fs.readFileSync };
  const DEV_NULL_RDEV = 259;
  let written: { 1: Buffer; 2: Buffer };
  const text = (fd: 1 | 2) => written[fd].toString('utf8');
  let writeFailure: ((fd: number) => NodeJS.ErrnoException | undefined) | undefined;
  let piece: number;
  let stdout: { character: boolean; rdev: number } | NodeJS.ErrnoException;
  let fdinfo: string | NodeJS.ErrnoException;
  let fstatCalls: number;

  beforeEach(() => {
    written = { 1: Buffer.alloc(0), 2: Buffer.alloc(0) };
    writeFailure = undefined;
    piece = Number.POSITIVE_INFINITY;
    stdout = { character: false, rdev: 0 };
    fdinfo = 'pos:\t0\nflags:\t0100002\nmnt_id:\t25\n';
    fstatCalls = 0;
    vi.spyOn(fs, 'writeSync').mockImplementation(((fd: 1 | 2, buffer: Buffer, offset: number) => {
      if (fd !== 1 && fd !== 2) return (realFs.writeSync as (...args: unknown[]) => number)(fd, buffer, offset);
      const failure = writeFailure?.(fd);
      if (failure) throw failure;
      const bytes = buffer.subarray(offset, offset + piece);
      written[fd] = Buffer.concat([written[fd], bytes]);
      return bytes.length;
    }) as typeof fs.writeSync);
    vi.spyOn(fs, 'fstatSync').mockImplementation(((fd: number) => {
      if (fd !== 1) return realFs.fstatSync(fd);
      fstatCalls++;
      if (stdout instanceof Error) throw stdout;
      const { character, rdev } = stdout;
      return { isCharacterDevice: () => character, rdev } as fs.Stats;
    }) as typeof fs.fstatSync);
    vi.spyOn(fs, 'statSync').mockImplementation(((file: string) =>
      file === '/dev/null' ? ({ rdev: DEV_NULL_RDEV } as fs.Stats) : realFs.statSync(file)) as typeof fs.statSync);
    vi.spyOn(fs, 'readFileSync').mockImplementation(((file: string, options: unknown) => {
      if (file !== '/proc/self/fdinfo/1') return (realFs.readFileSync as (...args: unknown[]) => unknown)(file, options);
      if (fdinfo instanceof Error) throw fdinfo;
      return fdinfo;
    }) as typeof fs.readFileSync);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** A new process's output: whether fd 1 was closed at the start is judged once per process. */
  async function freshOutput() {
    vi.resetModules();
    const { processOutput } = await import('../../src/kernel/output.ts');
    return processOutput;
  }
  const errno = (code: string | undefined, message = 'write failed') => Object.assign(new Error(message), { code });
  function failureOf(call: () => void): { name: string; message: string; fix: string } {
    try {
      call();
    } catch (error) {
      const { name, message, fix } = error as { name: string; message: string; fix: string };
      return { name, message, fix };
    }
    throw new Error('expected an error');
  }

  it('delivers every byte when the pipe takes a few at a time, and waits out EAGAIN (a non-blocking pipe that is full)', async () => {
    const output = await freshOutput();
    piece = 3;
    let busy = 2;
    writeFailure = () => {
      if (busy === 0) return undefined;
      busy--;
      return errno('EAGAIN');
    };
    output.stdout('sk-test-0123456789abcdef – ok\n');
    expect(text(1)).toBe('sk-test-0123456789abcdef – ok\n');
    expect(busy).toBe(0);
  });

  it('says the reader closed the pipe (EPIPE), and nothing was delivered', async () => {
    const output = await freshOutput();
    writeFailure = () => errno('EPIPE');
    expect(failureOf(() => output.stdout('sk-test-abc'))).toEqual({
      name: 'OutputFailed',
      message: 'cannot write to standard output (EPIPE: the program reading it has closed the pipe); nothing was delivered',
      fix: 'keep the reading end open until keybroker exits',
    });
  });

  it.each([
    ['ENOSPC', 'the disk it goes to is full'],
    ['EDQUOT', 'the disk it goes to is full'],
    ['EROFS', 'it goes to a read-only file system'],
    ['EIO', 'EIO'],
    [undefined, 'write failed'],
  ])('names a full disk, a read-only file system or the error itself (%s)', async (code, why) => {
    const output = await freshOutput();
    writeFailure = () => errno(code);
    expect(failureOf(() => output.stdout('sk-test-abc'))).toEqual({
      name: 'OutputFailed',
      message: `cannot write to standard output (${why}); nothing was delivered`,
      fix: 'free space where the output goes, or send it elsewhere',
    });
  });

  it('ends a stderr line with one line break, and says nothing more when stderr fails too', async () => {
    const output = await freshOutput();
    output.stderr('keybroker: a warning');
    output.stderr('keybroker: another\n');
    expect(text(2)).toBe('keybroker: a warning\nkeybroker: another\n');
    writeFailure = (fd) => (fd === 2 ? errno('EPIPE') : undefined);
    expect(() => output.stderr('keybroker: lost')).not.toThrow();
  });

  it('refuses to print into a stdout that was closed at the start (Node reopens it as /dev/null, read-write)', async () => {
    stdout = { character: true, rdev: DEV_NULL_RDEV };
    const output = await freshOutput();
    expect(failureOf(() => output.stdout('sk-test-abc'))).toEqual({
      name: 'OutputFailed',
      message: 'standard output is closed; nothing was delivered',
      fix: 'run keybroker with its output going somewhere (Claude Code reads it through a pipe)',
    });
    expect(text(1)).toBe('');
  });

  it('judges fd 1 once per process, and a closed one stays closed', async () => {
    stdout = { character: true, rdev: DEV_NULL_RDEV };
    const output = await freshOutput();
    expect(() => output.stdout('a')).toThrow('standard output is closed');
    stdout = { character: false, rdev: 0 };
    expect(() => output.stdout('b')).toThrow('standard output is closed');
    expect(fstatCalls).toBe(1);
  });

  it('counts a descriptor that is not open at all (EBADF) as closed', async () => {
    stdout = errno('EBADF');
    const output = await freshOutput();
    expect(() => output.stdout('sk-test-abc')).toThrow('standard output is closed');
  });

  it.each([
    [
      'a /dev/null opened write-only (the shell\'s ">/dev/null": a choice to discard)',
      { character: true, rdev: DEV_NULL_RDEV },
      'flags:\t0100001',
    ],
    ['a terminal (another character device)', { character: true, rdev: 34816 }, 'flags:\t0100002'],
    ['a file or a pipe', { character: false, rdev: DEV_NULL_RDEV }, 'flags:\t0100002'],
    ['a /dev/null whose open mode cannot be read', { character: true, rdev: DEV_NULL_RDEV }, errno('ENOENT')],
    ['a /dev/null whose fdinfo has no flags line', { character: true, rdev: DEV_NULL_RDEV }, 'pos:\t0\n'],
  ])('prints into %s', async (_, stat, info) => {
    stdout = stat;
    fdinfo = info;
    const output = await freshOutput();
    output.stdout('sk-test-abc');
    expect(text(1)).toBe('sk-test-abc');
  });

  it('prints into a read-write /dev/null on other systems, where the open mode cannot be read', async () => {
    stdout = { character: true, rdev: DEV_NULL_RDEV };
    const platform = Object.getOwnPropertyDescriptor(process, 'platform') ?? {};
    Object.defineProperty(process, 'platform', { ...platform, value: 'darwin' });
    try {
      const output = await freshOutput();
      output.stdout('sk-test-abc');
    } finally {
      Object.defineProperty(process, 'platform', platform);
    }
    expect(text(1)).toBe('sk-test-abc');
    expect(fstatCalls).toBe(0);
  });
});
