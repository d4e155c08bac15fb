// Telling the calling Claude Code process apart, through the shell Claude Code runs the helper in.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { identifyCaller, procInfo, processStartTime, type ProcessInfo } from '../../src/broker/caller.ts';
import { NOT_LINUX, skipOn } from '../support/platform.ts';
import { startProcess } from '../support/processes.ts';

function tree(processes: ProcessInfo[]) {
  const byPid = new Map(processes.map((info) => [info.pid, info]));
  return (pid: number) => byPid.get(pid);
}
const claude = (pid: number, start: string): ProcessInfo => ({ pid, ppid: 1, start, name: 'claude', args: ['claude', '-p', 'hi'] });
const shell = (pid: number, ppid: number): ProcessInfo => ({
  pid,
  ppid,
  start: '900',
  name: 'sh',
  args: ['/bin/sh', '-c', '/usr/local/bin/keybroker'],
});

describe('identifyCaller', () => {
  it('names the process above the `sh -c` that runs the helper, by pid and start time', () => {
    const caller = identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([claude(10, '5000'), shell(20, 10)]) });
    expect(caller).toMatchObject({ id: 'proc:10:5000', how: 'process-tree' });
  });

  it('tells a reused pid from the original caller by its start time', () => {
    const first = identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([claude(10, '5000'), shell(20, 10)]) });
    const reused = identifyCaller({}, { platform: 'linux', ppid: 21, inspect: tree([claude(10, '7777'), shell(21, 10)]) });
    expect(first!.id).not.toBe(reused!.id);
  });

  it('gives the same identity to two helper runs of one Claude Code process (each in a new shell)', () => {
    const processes = [claude(10, '5000'), shell(20, 10), shell(21, 10)];
    const a = identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree(processes) });
    const b = identifyCaller({}, { platform: 'linux', ppid: 21, inspect: tree(processes) });
    expect(a!.id).toBe(b!.id);
  });

  it('prefers a hash of CLAUDE_CODE_MESSAGING_TOKEN and never keeps the token', () => {
    const caller = identifyCaller(
      { CLAUDE_CODE_MESSAGING_TOKEN: 'tok-secret-value' },
      { platform: 'linux', ppid: 20, inspect: () => undefined },
    );
    expect(caller!.how).toBe('messaging-token');
    expect(caller!.id).not.toContain('tok-secret-value');
    expect(caller!.id).toMatch(/^token:[0-9a-f]{24}$/);
    expect(caller!.description).toBe('Claude Code (messaging token)');
  });

  it('has no identity where the process tree cannot be read (the 401 rule is then off)', () => {
    // On Windows even a parent that carries Claude Code's environment is not looked at.
    expect(identifyCaller({ CLAUDE_CODE_ENTRYPOINT: 'cli' }, { platform: 'win32', ppid: process.pid })).toBeUndefined();
    expect(identifyCaller({}, { platform: 'linux', ppid: 20, inspect: () => undefined })).toBeUndefined();
  });

  it.skipIf(skipOn(NOT_LINUX, 'reads /proc', import.meta.filename))(
    'reads this very process from /proc with its parent and start time',
    () => {
      const me = procInfo(process.pid)!;
      expect(me.ppid).toBe(process.ppid);
      expect(me.start).toMatch(/^\d+$/);
    },
  );

  it('does not take a terminal or a script for Claude Code (no 401 inferred from their repeats)', () => {
    const terminal: ProcessInfo = { pid: 30, ppid: 1, start: '1', name: 'bash', args: ['-bash'] };
    const script: ProcessInfo = { pid: 31, ppid: 1, start: '1', name: 'node', args: ['node', 'deploy.js'] };
    expect(identifyCaller({}, { platform: 'linux', ppid: 30, inspect: tree([terminal]) })).toBeUndefined();
    expect(identifyCaller({}, { platform: 'linux', ppid: 31, inspect: tree([script]) })).toBeUndefined();
  });

  it.each(['sh', 'dash', 'bash', 'zsh', 'ash', 'ksh', 'mksh', 'busybox', 'fish', 'cmd.exe', 'cmd'])(
    'looks through a %s that runs the helper with -c, alone or in a group of options (-lc, -euc, -ce)',
    (name) => {
      for (const flag of ['-c', '-lc', '-euc', '-ce']) {
        const viaShell: ProcessInfo = { pid: 20, ppid: 10, start: '9', name, args: [name, flag, 'keybroker'] };
        const caller = identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([claude(10, '5000'), viaShell]) });
        expect(caller?.id, flag).toBe('proc:10:5000');
      }
    },
  );

  it('a shell without -c is no helper shell: it ran keybroker from a prompt or a script, which is not Claude Code', () => {
    const script: ProcessInfo = { pid: 20, ppid: 10, start: '9', name: 'bash', args: ['bash', '-e', 'run.sh'] };
    expect(identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([claude(10, '5000'), script]) })).toBeUndefined();
    const word: ProcessInfo = { pid: 20, ppid: 10, start: '9', name: 'sh', args: ['sh', 'x-c', '--c'] };
    expect(identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([claude(10, '5000'), word]) })).toBeUndefined();
  });

  it('looks through at most three nested helper shells', () => {
    const chain = (shells: number) => [
      claude(10, '5000'),
      ...Array.from({ length: shells }, (_, i) => shell(21 + i, i === 0 ? 10 : 20 + i)),
    ];
    expect(identifyCaller({}, { platform: 'linux', ppid: 23, inspect: tree(chain(3)) })?.id).toBe('proc:10:5000');
    expect(identifyCaller({}, { platform: 'linux', ppid: 24, inspect: tree(chain(4)) })).toBeUndefined();
  });

  it('an orphaned helper shell (adopted by init) has no caller, even with Claude Code in its environment', () => {
    const init: ProcessInfo = { pid: 1, ppid: 0, start: '1', name: 'systemd', args: ['/sbin/init'] };
    const env = { CLAUDE_CODE_ENTRYPOINT: 'cli' };
    expect(identifyCaller(env, { platform: 'linux', ppid: 20, inspect: tree([init, shell(20, 1)]) })).toBeUndefined();
  });

  it('judges a process with no command line (a zombie, exited and not reaped) by its name', () => {
    const zombie: ProcessInfo = { pid: 40, ppid: 1, start: '9', name: 'claude', args: [], state: 'Z' };
    expect(identifyCaller({}, { platform: 'linux', ppid: 41, inspect: tree([zombie, shell(41, 40)]) })?.id).toBe('proc:40:9');
  });

  it('a process tree that stops being readable half-way gives no identity', () => {
    expect(identifyCaller({}, { platform: 'linux', ppid: 20, inspect: tree([shell(20, 10)]) })).toBeUndefined();
  });

  it.each([
    ['CLAUDE_CODE_ENTRYPOINT', { CLAUDE_CODE_ENTRYPOINT: 'sdk-ts' }],
    ['AI_AGENT claude-code…', { AI_AGENT: 'claude-code_2-1-197_agent' }],
    ['AI_AGENT Claude_Code…', { AI_AGENT: 'Claude_Code' }],
  ])('takes a process of any name for Claude Code when the helper has %s', (_, env) => {
    const node: ProcessInfo = { pid: 40, ppid: 1, start: '9', name: 'node', args: ['node', '/opt/cli.js'] };
    expect(identifyCaller(env, { platform: 'linux', ppid: 41, inspect: tree([node, shell(41, 40)]) })).toEqual({
      id: 'proc:40:9',
      how: 'process-tree',
      description: 'node (pid 40)',
    });
  });

  it('an AI_AGENT that is not Claude Code does not make a process Claude Code', () => {
    const node: ProcessInfo = { pid: 40, ppid: 1, start: '9', name: 'node', args: ['node', '/opt/cli.js'] };
    for (const agent of ['my-claude-code', 'claude', '']) {
      expect(identifyCaller({ AI_AGENT: agent }, { platform: 'linux', ppid: 41, inspect: tree([node, shell(41, 40)]) })).toBeUndefined();
    }
  });

  it.each([
    ['/usr/local/bin/claude', 'node'],
    ['/home/me/.local/share/claude/versions/2.1.0', 'claude'],
    ['C:\\Users\\me\\claude.exe', 'claude.exe'],
  ])('knows Claude Code by its program %s or the name the OS gives it (%s)', (program, name) => {
    const caller: ProcessInfo = { pid: 40, ppid: 1, start: '9', name, args: [program, '-p'] };
    expect(identifyCaller({}, { platform: 'linux', ppid: 41, inspect: tree([caller, shell(41, 40)]) })?.id).toBe('proc:40:9');
  });

  it('recognises Claude Code by the environment it gives the helper when its process has another name', () => {
    const node: ProcessInfo = { pid: 40, ppid: 1, start: '9', name: 'node', args: ['node', '/opt/claude-code/cli.js'] };
    const env = { CLAUDE_CODE_ENTRYPOINT: 'sdk-cli', AI_AGENT: 'claude-code_2-1-197_harness' };
    expect(identifyCaller(env, { platform: 'linux', ppid: 41, inspect: tree([node, shell(41, 40)]) })).toMatchObject({ id: 'proc:40:9' });
  });
});

describe.skipIf(skipOn(['win32'], 'reads processes from /proc or ps', import.meta.filename))(
  'a real process tree: this process runs sh -c',
  () => {
    // This test process stands for Claude Code (its environment says so); the shell stands for the helper's `sh -c`.
    const env = { CLAUDE_CODE_ENTRYPOINT: 'cli' };

    const readsCaller = async (platform: 'linux' | 'darwin') => {
      const helperShell = startProcess('sh', ['-c', 'sleep 30; :']);
      try {
        await new Promise((resolve) => helperShell.child.once('spawn', resolve));
        const caller = identifyCaller(env, { platform, ppid: helperShell.child.pid });
        expect(caller).toMatchObject({ id: `proc:${process.pid}:${processStartTime(process.pid, platform)}`, how: 'process-tree' });
        expect(caller!.description).toMatch(new RegExp(`^\\S+ \\(pid ${process.pid}\\)$`));
        expect(processStartTime(process.pid, platform)).toMatch(platform === 'linux' ? /^\d+$/ : /^\w{3}_\w{3}_\d+_[\d:]{8}_\d{4}$/);
      } finally {
        await helperShell.stop();
      }
    };
    it.skipIf(skipOn(NOT_LINUX, 'reads /proc', import.meta.filename))('reads the caller above the shell from /proc', () =>
      readsCaller('linux'),
    );
    it('reads the caller above the shell with ps, as on macOS', () => readsCaller('darwin'));

    it('a pid that does not exist has no start time, and Windows none at all', () => {
      expect(processStartTime(2 ** 22 + 1, 'linux')).toBeUndefined();
      expect(processStartTime(2 ** 22 + 1, 'darwin')).toBeUndefined();
      expect(processStartTime(process.pid, 'win32')).toBeUndefined();
    });
  },
);

describe.skipIf(skipOn(NOT_LINUX, 'reads /proc', import.meta.filename))('procInfo', () => {
  it('reads a process whose name holds spaces and parentheses without shifting its fields', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-proc-'));
    const program = path.join(dir, 'kb (x) y');
    fs.copyFileSync('/bin/sleep', program);
    fs.chmodSync(program, 0o755);
    const child = startProcess(program, ['30']);
    try {
      await new Promise((resolve) => child.child.once('spawn', resolve));
      const info = procInfo(child.child.pid!);
      expect(info).toEqual({
        pid: child.child.pid,
        ppid: process.pid,
        start: expect.stringMatching(/^\d+$/),
        name: 'kb (x) y',
        args: [program, '30'],
        state: expect.stringMatching(/^[RSD]$/),
      });
    } finally {
      await child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names a shell by its argv[0] when the OS names the process otherwise (busybox, a renamed dash)', async () => {
    const child = startProcess('sleep', ['30'], { argv0: '/bin/dash' });
    try {
      await new Promise((resolve) => child.child.once('spawn', resolve));
      expect(procInfo(child.child.pid!)).toMatchObject({ name: 'dash', args: ['/bin/dash', '30'] });
    } finally {
      await child.stop();
    }
  });
});

describe.skipIf(skipOn(['win32'], 'a POSIX shell script as ps', import.meta.filename))('ps (macOS)', () => {
  /** Runs `test` with a `ps` first on PATH that answers for `lines` (pid → its line) and fails for other pids. */
  function withFakePs(lines: Record<number, string>, failing: number[], test: () => void): void {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-ps-'));
    const cases = Object.entries(lines).map(
      ([pid, line]) => `  ${pid}) printf '%s\\n' '${line}'; exit ${failing.includes(Number(pid)) ? 1 : 0} ;;`,
    );
    // Called as: ps -o ppid= -o lstart= -o command= -p PID
    fs.writeFileSync(path.join(dir, 'ps'), ['#!/bin/sh', 'case "$8" in', ...cases, '  *) exit 1 ;;', 'esac', ''].join('\n'), {
      mode: 0o755,
    });
    const pathBefore = process.env['PATH'];
    process.env['PATH'] = `${dir}${path.delimiter}${pathBefore}`;
    try {
      test();
    } finally {
      process.env['PATH'] = pathBefore;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const env = { CLAUDE_CODE_ENTRYPOINT: 'cli' };

  it('reads the parent, the start time (five words, a day padded with a space) and the command of each process', () => {
    const lines = {
      20: '   10 Fri Nov  7 14:18:01 2026 /bin/sh -c /usr/local/bin/keybroker',
      10: '    1 Thu Nov 27 09:05:33 2026 /Users/me/.local/bin/claude --resume',
    };
    withFakePs(lines, [], () => {
      expect(identifyCaller({}, { platform: 'darwin', ppid: 20 })).toEqual({
        id: 'proc:10:Thu_Nov_27_09:05:33_2026',
        how: 'process-tree',
        description: 'claude (pid 10)',
      });
      expect(processStartTime(20, 'darwin')).toBe('Fri_Nov_7_14:18:01_2026');
    });
  });

  it('names a login shell without its dash, and keeps a dash inside a name', () => {
    const lines = { 30: '    1 Fri Nov 27 14:18:01 2026 -zsh', 40: '    1 Fri Nov 27 14:18:01 2026 /opt/bin/kb-helper --serve' };
    withFakePs(lines, [], () => {
      expect(identifyCaller(env, { platform: 'darwin', ppid: 30 })?.description).toBe('zsh (pid 30)');
      expect(identifyCaller(env, { platform: 'darwin', ppid: 40 })?.description).toBe('kb-helper (pid 40)');
    });
  });

  it('believes nothing from a ps that failed or answered something else', () => {
    const lines = { 50: '    1 Fri Nov 27 14:18:01 2026 claude', 60: 'PID STARTED COMMAND', 70: '    1 Fri Nov 27 14:18:01 2026' };
    withFakePs(lines, [50], () => {
      expect(processStartTime(50, 'darwin')).toBeUndefined();
      expect(processStartTime(60, 'darwin')).toBeUndefined();
      expect(processStartTime(70, 'darwin')).toBeUndefined();
      expect(identifyCaller(env, { platform: 'darwin', ppid: 60 })).toBeUndefined();
    });
  });
});
