// Who is calling `get`: the Claude Code process above the `/bin/sh -c` that runs the helper.
// Two calls from the same caller within its TTL mean it was just refused with a 401 (SPEC §1).
//
// Order of evidence:
//  1. CLAUDE_CODE_MESSAGING_TOKEN (set by newer Claude Code, one per process): its SHA-256 only,
//     never the token itself.
//  2. The process tree: skip non-interactive shells (`sh -c`, `bash -c`) upwards from our parent;
//     the first other process is the caller, named by pid AND start time so a reused pid is a
//     different caller. Linux reads /proc; macOS asks `ps`.
//     The process must be Claude Code: named `claude`, or the helper's environment carries what
//     Claude Code sets for it (CLAUDE_CODE_ENTRYPOINT, AI_AGENT=claude-code…). A terminal or a
//     script calling `keybroker get` twice is not taken for a 401 (it can pass --recheck).
//  3. Neither (Windows, a /proc we may not read, `ps` missing): no caller identity. The 401 rule
//     is then off and a rotated key arrives through freshness (`refreshAfter`) alone.
import fs from 'node:fs';
import { sha256Hex } from '../kernel/sha256.ts';

export interface CallerIdentity {
  /** Stable for one caller process, different for another; never a credential. */
  id: string;
  how: 'messaging-token' | 'process-tree';
  /** For debug traces: "claude (pid 123)". */
  description: string;
}

const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'ash', 'ksh', 'mksh', 'busybox', 'fish', 'cmd.exe', 'cmd']);

export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Start time as the OS gives it; with the pid it names one process for its lifetime. */
  start: string;
  name: string;
  args: string[];
  /** Linux: the state letter of /proc/PID/stat (Z: a zombie, exited and not yet reaped). */
  state?: string;
}

export function identifyCaller(
  env: NodeJS.ProcessEnv,
  options: { platform?: NodeJS.Platform; ppid?: number; inspect?: (pid: number) => ProcessInfo | undefined } = {},
): CallerIdentity | undefined {
  const token = env['CLAUDE_CODE_MESSAGING_TOKEN'];
  if (token) {
    return { id: `token:${sha256Hex(token).slice(0, 24)}`, how: 'messaging-token', description: 'Claude Code (messaging token)' };
  }
  const platform = options.platform ?? process.platform;
  const inspect = options.inspect ?? (platform === 'linux' ? procInfo : platform === 'darwin' ? psInfo : undefined);
  if (!inspect) return undefined;
  let pid = options.ppid ?? process.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    const info = inspect(pid);
    if (!info) return undefined;
    // Stryker disable next-line MethodExpression: equivalent, no shell's argv[0] (a login shell's is "-bash") is a group of options
    const options = info.args.slice(1);
    // `-c`, alone or in a group of one-letter options (`-lc`, `-euc`).
    const helperShell = SHELLS.has(info.name) && options.some((arg) => /^-[a-z]*c[a-z]*$/.test(arg));
    if (!helperShell) {
      if (!looksLikeClaudeCode(info, env)) return undefined;
      return { id: `proc:${info.pid}:${info.start}`, how: 'process-tree', description: `${info.name} (pid ${info.pid})` };
    }
    pid = info.ppid;
  }
  return undefined;
}

function looksLikeClaudeCode(info: ProcessInfo, env: NodeJS.ProcessEnv): boolean {
  // Stryker disable next-line StringLiteral: equivalent, an absent AI_AGENT names no Claude Code whatever stands in for it
  const { CLAUDE_CODE_ENTRYPOINT: entrypoint, AI_AGENT: agent = '' } = env;
  if (entrypoint || /^claude[-_]code/i.test(agent)) return true;
  const program = info.args[0]?.split(/[\\/]/).at(-1);
  return info.name === 'claude' || program === 'claude' || program === 'claude.exe';
}

/** Linux: /proc/PID/stat (ppid, start time in clock ticks since boot) and /proc/PID/cmdline. */
export function procInfo(pid: number): ProcessInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const base = args[0] ? args[0].split('/').at(-1)! : name;
    // Stryker disable next-line StringLiteral: equivalent, a /proc stat line always has these fields
    return { pid, ppid: Number(fields[1]), start: fields[19] ?? '', name: SHELLS.has(base) ? base : name, args, state: fields[0] ?? '' };
  } catch {
    // No such process (any more), or not ours to read.
  }
  return undefined;
}

/** macOS (and other Unixes with BSD ps): one `ps` call per process looked at. */
function psInfo(pid: number): ProcessInfo | undefined {
  // Loaded here, not at the top: node:child_process costs a warm `get` ~2 ms to load.
  const result = process
    .getBuiltinModule('node:child_process')
    .spawnSync('ps', ['-o', 'ppid=', '-o', 'lstart=', '-o', 'command=', '-p', String(pid)], {
      encoding: 'utf8',
      timeout: 1_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  if (result.status !== 0) return undefined;
  // The parent, the start time in five words ("Fri Nov  7 14:18:01 2026"), then the command's words.
  const [parent, ...words] = result.stdout.trim().split(/\s+/);
  const ppid = Number(parent);
  if (!Number.isInteger(ppid) || words.length < 6) return undefined;
  const args = words.slice(5);
  return { pid, ppid, start: words.slice(0, 5).join('_'), name: args[0]!.split('/').at(-1)!.replace(/^-/, ''), args };
}

/** The start time of a process (for telling a live lock holder from a reused pid); undefined when unknown. */
export function processStartTime(pid: number, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'linux') return procInfo(pid)?.start;
  if (platform === 'darwin') return psInfo(pid)?.start;
  return undefined;
}
