// The internal-error line: an error no part of keybroker typed (a bug) reaches the edge, and its
// message may carry whatever the code held, a key included. Every outside error is typed where it
// is met (stores, gateways, identity providers), so no server can make the binary throw one that
// quotes a key; here a command stands in for that bug.
import { expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import type { Command } from '../../src/cli/command.ts';

const KEY = 'TESTONLYq7Wm3Xk9Pz2Lr5Vt8Yb4Nc6';

vi.mock('../../src/cli/commands/status.ts', () => ({
  statusCommand: {
    name: 'status',
    summary: 'stands in for a command with a bug',
    help: '',
    options: {},
    run: () => {
      throw new TypeError(`cannot read the answer {"api_key":"${KEY}"}`);
    },
  } satisfies Command,
}));

async function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const stderr: string[] = [];
  const code = await main(args, { env, output: { stdout: () => {}, stderr: (line) => stderr.push(line) }, now: Date.now, isTTY: false });
  return { code, stderr: stderr.join('\n') };
}

it('an internal error whose message carries a key: exit 1, the line masks it', async () => {
  const result = await run(['status']);
  expect(result.code).toBe(1);
  expect(result.stderr).toBe(
    'keybroker: internal error: cannot read the answer {"api_key":"…"}: run again with KEYBROKER_DEBUG=1 and report it',
  );
});

it('with KEYBROKER_DEBUG=1 its stack in the debug trace is masked too', async () => {
  const result = await run(['status'], { KEYBROKER_DEBUG: '1' });
  expect(result.stderr).toMatch(/keybroker: debug: TypeError: cannot read the answer/);
  expect(result.stderr).not.toContain(KEY.slice(8, 16));
});
