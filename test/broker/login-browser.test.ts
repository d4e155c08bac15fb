// How `keybroker login` hands the sign-in address to a browser: $BROWSER first, as xdg-open reads it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { browserCommands, openInBrowser, signInPage } from '../../src/broker/login.ts';
import { addressInPage } from '../support/fake-browser.ts';

const URL_WITH_QUERY =
  'https://idp.example.com/authorize?client_id=vault&state=st_1&redirect_uri=http%3A%2F%2Flocalhost%3A8250%2Foidc%2Fcallback';

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
  test('skips a $BROWSER entry that cannot start and hands the next one a 0600 file:// page that leads to the address, never the address', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-browser-'));
    try {
      const record = path.join(dir, 'argv');
      const browser = path.join(dir, 'browser');
      fs.writeFileSync(browser, `#!/bin/sh\nprintf '%s\\n' "$#" "$@" > '${record}'\n`, { mode: 0o755 });
      const said: string[] = [];
      const env = {
        PATH: dir,
        KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'),
        BROWSER: `${path.join(dir, 'missing')}:${browser} --new-window`,
      };
      await openInBrowser(URL_WITH_QUERY, { env, say: (line) => said.push(line), debug: () => {} });
      expect(said).toEqual([`opened the address with $BROWSER (${browser})`]);
      await expect.poll(() => fs.existsSync(record) && fs.readFileSync(record, 'utf8').split('\n').length).toBe(4);
      const [count, flag, page, ...rest] = fs.readFileSync(record, 'utf8').split('\n');
      expect([count, flag, rest]).toEqual(['2', '--new-window', ['']]);
      expect(page).toMatch(new RegExp(`^file://${path.join(dir, 'run', 'sign-in')}/[0-9a-f-]{36}\\.html$`));
      expect(page).not.toContain('st_1');
      const file = new URL(page!).pathname;
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      expect(addressInPage(fs.readFileSync(file, 'utf8'))).toBe(URL_WITH_QUERY);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the page escapes the address for HTML and for its script', () => {
    const page = signInPage('https://idp.example/a?x="</script><b>&y=\'');
    expect(page).not.toContain('</script><b>');
    expect(page).toContain('href="https://idp.example/a?x=&#34;&#60;/script&#62;&#60;b&#62;&#38;y=&#39;"');
    expect(addressInPage(page)).toBe('https://idp.example/a?x="</script><b>&y=\'');
  });

  test('says so when nothing could be started, so the person opens the printed address', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-browser-'));
    try {
      const said: string[] = [];
      const debug: string[] = [];
      await openInBrowser(URL_WITH_QUERY, {
        env: { PATH: dir, KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'), BROWSER: path.join(dir, 'missing') },
        say: (line) => said.push(line),
        debug: (line) => debug.push(line),
        platform: 'linux',
      });
      expect(said).toEqual(['no browser could be opened (set BROWSER to one): open the address above in a browser on this machine']);
      expect(debug).toEqual([
        `$BROWSER (${path.join(dir, 'missing')}): ${path.join(dir, 'missing')} could not be started (ENOENT)`,
        'xdg-open: xdg-open could not be started (ENOENT)',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('with no private folder for the page, opens nothing and says to open the printed address', async () => {
    const said: string[] = [];
    // A runtime folder that cannot be made: its parent is a file (a /proc path would now be ignored, not refused).
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kb-no-folder-')), 'a-file');
    fs.writeFileSync(file, '');
    try {
      await openInBrowser(URL_WITH_QUERY, {
        env: { PATH: '/nonexistent', KEYBROKER_RUNTIME_DIR: path.join(file, 'run'), BROWSER: 'true' },
        say: (line) => said.push(line),
        debug: () => {},
      });
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
    expect(said).toEqual(['no private folder for the sign-in page (see --verbose): open the address above in a browser on this machine']);
  });
});
