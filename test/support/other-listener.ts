// An HTTP listener on 127.0.0.1 that belongs to another local user (uid 65534, started with
// setpriv): what any user of a shared machine can start on a free port. It answers 200 to
// everything and reports each request it received (method, path, headers, body) to the test.
import { spawn, type ChildProcess } from 'node:child_process';
import { OTHER_UID } from './other-user.ts';

interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface OtherListener {
  port: number;
  url: string;
  /** Every request received so far, in arrival order. */
  received: ReceivedRequest[];
  stop(): Promise<void>;
}

const SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    process.stdout.write(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }) + '\\n');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(Number(process.argv[2]), process.argv[1], () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

/** Starts the listener as uid 65534 on `host` (127.0.0.1 by default) and `port` (a free one by default); resolves once it listens. */
export function listenAsOtherUser(host = '127.0.0.1', port = 0): Promise<OtherListener> {
  const child: ChildProcess = spawn(
    'setpriv',
    ['--reuid', String(OTHER_UID), '--regid', String(OTHER_UID), '--clear-groups', process.execPath, '-e', SERVER, host, String(port)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const received: ReceivedRequest[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the other user's listener exited (${code})`)));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let end = buffered.indexOf('\n'); end >= 0; end = buffered.indexOf('\n')) {
        const message = JSON.parse(buffered.slice(0, end)) as { port?: number } & ReceivedRequest;
        buffered = buffered.slice(end + 1);
        if (message.port === undefined) {
          received.push(message);
          continue;
        }
        const port = message.port;
        resolve({
          port,
          url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
          received,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null || child.signalCode !== null) return done();
              child.removeAllListeners('exit');
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}
