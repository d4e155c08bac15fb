// Captures `keybroker doctor` as a terminal shows it (a real TTY in tmux), for the README.
// Run: npx node test/doctor/capture-screen.ts   (needs dist/keybroker, moto_server and tmux)
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { BINARY } from '../support/binary.ts';
import { startMachine } from './setup.ts';

const machine = await startMachine();
const session = `kb-doctor-capture-${process.pid}`;
try {
  await machine.run(['setup', '--write', '--gateway', machine.gateway.url]);
  await machine.run(['get']);
  const scenarios: [string, () => void, string[]][] = [
    ['healthy', () => {}, []],
    [
      'buffering gateway, unrouted model',
      () => {
        machine.gateway.setFault('buffered-stream');
        machine.gateway.routeModels(['claude-sonnet-4-5']);
      },
      ['--model', 'claude-sonnet-4-5', '--model', 'claude-opus-4-1'],
    ],
  ];
  for (const [name, arrange, args] of scenarios) {
    arrange();
    const env = Object.entries({ ...machine.env, ANTHROPIC_BASE_URL: undefined, TERM: 'xterm-256color' })
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${value}`);
    execFileSync('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '200',
      '-y',
      '50',
      '-c',
      machine.home,
      'env',
      '-i',
      ...env,
      'sh',
      '-c',
      `'${BINARY}' doctor ${args.join(' ')}; sleep 60`,
    ]);
    let screen = '';
    for (let tries = 0; tries < 100 && !/^doctor: /m.test(screen); tries++) {
      await sleep(100);
      screen = execFileSync('tmux', ['capture-pane', '-p', '-J', '-t', session], { encoding: 'utf8' });
    }
    execFileSync('tmux', ['kill-session', '-t', session]);
    console.log(`--- ${name}\n$ keybroker doctor ${args.join(' ')}\n${screen.replaceAll(machine.home, '~').trimEnd()}\n`);
  }
} finally {
  try {
    execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  await machine.stop();
}
