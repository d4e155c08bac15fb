// How `keybroker login` hands the sign-in address to a browser: $BROWSER first, as xdg-open reads it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { browserCommands, openInBrowser, signInPage, writeSignInPage } from '../../src/broker/login.ts';
import { addressInPage } from '../support/fake-browser.ts';
import { skipOn } from '../support/platform.ts';

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
    expect(windows[2]).toEqual({
      command: 'rundll32',
      args: ['url.dll,FileProtocolHandler', URL_WITH_QUERY],
      label: 'the default browser',
    });
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

  test('the page leads to the address three ways (refresh, script, link), tells the next page nothing, and ends with the document', () => {
    const page = signInPage(URL_WITH_QUERY);
    const unescapeHtml = (text: string) => text.replace(/&#(\d+);/g, (_match, code: string) => String.fromCharCode(Number(code)));
    expect(unescapeHtml(/<meta http-equiv="refresh" content="0;url=([^"]*)">/.exec(page)![1]!)).toBe(URL_WITH_QUERY);
    expect(JSON.parse(/<script>location\.replace\((.*)\)<\/script>/.exec(page)![1]!)).toBe(URL_WITH_QUERY);
    expect(addressInPage(page)).toBe(URL_WITH_QUERY);
    expect(page).toContain('<meta name="referrer" content="no-referrer">');
    expect(page.startsWith('<!doctype html><html><head><meta charset="utf-8">')).toBe(true);
    expect(page.endsWith('</script></body></html>\n')).toBe(true);
  });

  test('the page escapes the address for HTML and for its script', () => {
    const page = signInPage('https://idp.example/a?x="</script><b>&y=\'');
    expect(page).not.toContain('</script><b>');
    expect(page).toContain('href="https://idp.example/a?x=&#34;&#60;/script&#62;&#60;b&#62;&#38;y=&#39;"');
    expect(addressInPage(page)).toBe('https://idp.example/a?x="</script><b>&y=\'');
    expect(JSON.parse(/<script>location\.replace\((.*)\)<\/script>/.exec(page)![1]!)).toBe('https://idp.example/a?x="</script><b>&y=\'');
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

/** A $BROWSER script that notes its pid, its process group and $KB_MARK, then runs `rest`. */
function recordingBrowser(dir: string, rest: string): { script: string; facts(): Record<string, string> } {
  const script = path.join(dir, 'browser');
  const facts = path.join(dir, 'facts');
  const note = `printf 'pid=%s\\npgid=%s\\nmark=%s\\n' "$$" "$(ps -o pgid= -p $$ | tr -d ' ')" "$KB_MARK" > '${facts}.tmp'; mv '${facts}.tmp' '${facts}'`;
  fs.writeFileSync(script, `#!/bin/sh\n${note}\n${rest}\n`, { mode: 0o755 });
  const read = () =>
    fs
      .readFileSync(facts, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split('=') as [string, string]);
  return { script, facts: () => (fs.existsSync(facts) ? Object.fromEntries(read()) : {}) };
}

describe('openInBrowser, once the browser runs', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-browser-'));
    dirs.push(dir);
    return dir;
  };
  const open = async (dir: string, script: string, said: string[]) =>
    openInBrowser(URL_WITH_QUERY, {
      env: { PATH: '/usr/bin:/bin', KEYBROKER_RUNTIME_DIR: path.join(dir, 'run'), BROWSER: script, KB_MARK: 'from-keybroker' },
      say: (line) => said.push(line),
      debug: () => {},
    });

  test('a browser that exits with an error is reported, so the person opens the address; one that exits 0 is not', async () => {
    const failing = tempDir();
    const broken = recordingBrowser(failing, 'exit 3');
    const said: string[] = [];
    await open(failing, broken.script, said);
    await expect.poll(() => said, { timeout: 10_000 }).toHaveLength(2);
    expect(said).toEqual([
      `opened the address with $BROWSER (${broken.script})`,
      `$BROWSER (${broken.script}) could not open a browser (exit 3): open the address above yourself`,
    ]);

    const working = tempDir();
    const fine = recordingBrowser(working, 'exit 0');
    const saidFine: string[] = [];
    await open(working, fine.script, saidFine);
    await expect.poll(() => fine.facts()['pid']).toBeDefined();
    // Gone (reaped) means its 'exit' event has been handled: nothing more was said.
    const gone = () => {
      try {
        return void process.kill(Number(fine.facts()['pid']), 0);
      } catch {
        return 'gone';
      }
    };
    await expect.poll(gone, { timeout: 10_000 }).toBe('gone');
    expect(saidFine).toEqual([`opened the address with $BROWSER (${fine.script})`]);
  });

  test.skipIf(skipOn(['win32'], 'a POSIX shell script as the browser', import.meta.filename))(
    'the browser runs with keybroker environment, in its own process group, and keybroker does not wait for it',
    async () => {
      const dir = tempDir();
      const browser = recordingBrowser(dir, 'exec sleep 30');
      // A process or pipe handle left behind would keep keybroker running until the browser closes.
      const running = () => process.getActiveResourcesInfo().filter((name) => name === 'ProcessWrap' || name === 'PipeWrap').length;
      const before = running();
      await open(dir, browser.script, []);
      await expect.poll(() => browser.facts()['pid']).toBeDefined();
      const facts = browser.facts();
      try {
        expect(facts).toEqual({ pid: facts['pid'], pgid: facts['pid'], mark: 'from-keybroker' });
        expect(running()).toBe(before);
      } finally {
        process.kill(-Number(facts['pid']), 'SIGKILL');
      }
    },
  );
});

describe('writeSignInPage', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the page is removed when keybroker exits, even when it is already gone', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-page-'));
    dirs.push(dir);
    const once = vi.spyOn(process, 'once');
    const page = writeSignInPage(URL_WITH_QUERY, { KEYBROKER_RUNTIME_DIR: dir }, () => {})!;
    expect(fs.existsSync(page)).toBe(true);
    const onExit = once.mock.calls.find(([event]) => event === 'exit')![1] as () => void;
    process.removeListener('exit', onExit);
    onExit();
    expect(fs.existsSync(page)).toBe(false);
    expect(() => onExit()).not.toThrow();
  });

  test('with no private folder, or a page it cannot write, there is no page and the trace says why', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-page-'));
    dirs.push(dir);
    const debug: string[] = [];
    fs.writeFileSync(path.join(dir, 'a-file'), '');
    expect(
      writeSignInPage(URL_WITH_QUERY, { KEYBROKER_RUNTIME_DIR: path.join(dir, 'a-file', 'run') }, (line) => debug.push(line)),
    ).toBeUndefined();
    expect(debug).toEqual([expect.stringMatching(/^sign-in page: cannot create .*a-file\/run\/sign-in \(ENOTDIR/)]);

    debug.length = 0;
    vi.spyOn(fs, 'writeFileSync').mockImplementation(() => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    });
    expect(writeSignInPage(URL_WITH_QUERY, { KEYBROKER_RUNTIME_DIR: path.join(dir, 'run') }, (line) => debug.push(line))).toBeUndefined();
    expect(debug).toEqual([expect.stringMatching(/^sign-in page: cannot write .*\/run\/sign-in\/[0-9a-f-]{36}\.html \(ENOSPC\)$/)]);
    expect(fs.readdirSync(path.join(dir, 'run', 'sign-in'))).toEqual([]);
  });
});
