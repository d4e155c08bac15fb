// Every process the suite starts carries KEYBROKER_TEST_RUN=<this run's id> in its environment,
// so that the end of the run finds any that is still running, whoever started it and whatever it
// was re-parented to (a detached server whose test failed half-way, a daemon it forked).
import fs from 'node:fs';

export const RUN_TAG = 'KEYBROKER_TEST_RUN';

/** The variable to merge into a child's environment; empty outside a test run (the demo). */
export function runTag(): NodeJS.ProcessEnv {
  const id = process.env[RUN_TAG];
  return id ? { [RUN_TAG]: id } : {};
}

export interface TaggedProcess {
  pid: number;
  command: string;
}

/** Running processes whose environment carries run `id`; undefined where there is no /proc to read. */
export function processesOfRun(id: string, except: ReadonlySet<number> = new Set()): TaggedProcess[] | undefined {
  if (!fs.existsSync('/proc/self/environ')) return undefined;
  const needle = Buffer.from(`\0${RUN_TAG}=${id}\0`);
  const found: TaggedProcess[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || except.has(Number(name))) continue;
    try {
      const environ = Buffer.concat([Buffer.from('\0'), fs.readFileSync(`/proc/${name}/environ`), Buffer.from('\0')]);
      if (!environ.includes(needle)) continue;
      const state = /\) (\S)/.exec(fs.readFileSync(`/proc/${name}/stat`, 'utf8'))?.[1];
      if (state === 'Z') continue; // exited, waiting for its parent to reap it
      const command = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      found.push({ pid: Number(name), command });
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}
