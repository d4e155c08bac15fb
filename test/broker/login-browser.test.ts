// How `keybroker login` hands the sign-in address to a browser: $BROWSER first, as xdg-open reads it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { browserCommands, openInBrowser } from '../../src/broker/login.ts';

const URL_WITH_QUERY = 'https://idp.example.com/authorize?client_id=vault&state=st_1&redirect_uri=http%3A%2F%2Flocalhost%3A8250%2Foidc%2Fcallback';

describe('browserCommands', () => {
  test('each $BROWSER entry in order, %s replaced by the address or the address last, then xdg-open', () => {
    expect(browserCommands(URL_WITH_QUERY, { BROWSER: 'firefox:w3m -o confirm_qq=false %s: ' }, 'linux')).toEqual([
      { command: 'firefox', args: [URL_WITH_QUERY], label: '$BROWSER (firefox)' },
      { command: 'w3m', args: ['-o', 'confirm_qq=false', URL_WITH_QUERY], label: '$BROWSER (w3m)' },
      { command: 'xdg-open', args: [URL_WITH_QUERY], label: 'xdg-open' },
    ]);
  });

  test('%% is a literal percent sign, and the address is inserted as it is', () => {
    expect(browserCommands('https://x/?a=%41', { BROWSER: 'echo 100%%-%s' }, 'linux')[0]!.args).toEqual(['100%-https://x/?a=%41']);
  });

  test('without $BROWSER: the desktop opener of the platform; on Windows not cmd, which would cut the address at "&"', () => {
    expect(browserCommands(URL_WITH_QUERY, {}, 'darwin')).toEqual([{ command: 'open', args: [URL_WITH_QUERY], label: 'open' }]);
    const windows = browserCommands(URL_WITH_QUERY, { BROWSER: 'C:\\Tools\\chrome.exe;C:\\Tools\\edge.exe' }, 'win32');
    expect(windows.map((candidate) => candidate.command)).toEqual(['C:\\Tools\\chrome.exe', 'C:\\Tools\\edge.exe', 'rundll32']);
    expect(windows[2]!.args).toEqual(['url.dll,FileProtocolHandler', URL_WITH_QUERY]);
  });
});

describe('openInBrowser', () => {
  test('skips a $BROWSER entry that cannot start and hands the address, as one argument, to the next', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-browser-'));
    try {
      const record = path.join(dir, 'argv');
      const browser = path.join(dir, 'browser');
      fs.writeFileSync(browser, `#!/bin/sh\nprintf '%s\\n' "$#" "$@" > '${record}'\n`, { mode: 0o755 });
      const said: string[] = [];
      await openInBrowser(URL_WITH_QUERY, { env: { PATH: dir, BROWSER: `${path.join(dir, 'missing')}:${browser} --new-window` }, say: (line) => said.push(line), debug: () => {} });
      expect(said).toEqual([`opened the address with $BROWSER (${browser})`]);
      await expect.poll(() => fs.existsSync(record) && fs.readFileSync(record, 'utf8')).toBe(`2\n--new-window\n${URL_WITH_QUERY}\n`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('says so when nothing could be started, so the person opens the printed address', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-browser-'));
    try {
      const said: string[] = [];
      const debug: string[] = [];
      await openInBrowser(URL_WITH_QUERY, { env: { PATH: dir, BROWSER: path.join(dir, 'missing') }, say: (line) => said.push(line), debug: (line) => debug.push(line), platform: 'linux' });
      expect(said).toEqual(['no browser could be opened (set BROWSER to one): open the address above in a browser on this machine']);
      expect(debug).toEqual([`$BROWSER (${path.join(dir, 'missing')}): ${path.join(dir, 'missing')} could not be started (ENOENT)`, 'xdg-open: xdg-open could not be started (ENOENT)']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
