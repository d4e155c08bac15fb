// Telling the calling Claude Code process apart, through the shell Claude Code runs the helper in.
import { describe, expect, it } from 'vitest';
import { identifyCaller, procInfo, type ProcessInfo } from '../../src/broker/caller.ts';
import { NOT_LINUX, skipOn } from '../support/platform.ts';

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
  });

  it('has no identity where the process tree cannot be read (the 401 rule is then off)', () => {
    expect(identifyCaller({}, { platform: 'win32', ppid: 20 })).toBeUndefined();
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

  it('recognises Claude Code by the environment it gives the helper when its process has another name', () => {
    const node: ProcessInfo = { pid: 40, ppid: 1, start: '9', name: 'node', args: ['node', '/opt/claude-code/cli.js'] };
    const env = { CLAUDE_CODE_ENTRYPOINT: 'sdk-cli', AI_AGENT: 'claude-code_2-1-197_harness' };
    expect(identifyCaller(env, { platform: 'linux', ppid: 41, inspect: tree([node, shell(41, 40)]) })).toMatchObject({ id: 'proc:40:9' });
  });
});
