// A $BROWSER script for login tests: keybroker hands it a file:// sign-in page (never the address
// itself); it notes its whole argv, reads the page as a browser would, notes the address the page
// leads to and, when told to, follows it with curl (the identity provider redirects to the local
// callback, as it does a real browser).
import fs from 'node:fs';
import path from 'node:path';

export interface FakeBrowser {
  /** The script, for BROWSER. */
  script: string;
  /** Each run's argv, one array per run. */
  argv(): string[][];
  /** The address each page led to, in order. */
  addresses(): string[];
  /** Where the last followed answer's body was written. */
  pageFile: string;
}

/** The address a keybroker sign-in page sends the browser to (its link, unescaped). */
export function addressInPage(page: string): string | undefined {
  const href = /id="continue" href="([^"]*)"/.exec(page)?.[1];
  return href?.replace(/&#(\d+);/g, (_match, code: string) => String.fromCharCode(Number(code)));
}

export function makeFakeBrowser(dir: string, options: { follow: boolean }): FakeBrowser {
  fs.mkdirSync(dir, { recursive: true });
  const argvLog = path.join(dir, 'browser-argv.log');
  const addressLog = path.join(dir, 'browser-addresses.log');
  const pageFile = path.join(dir, 'browser-page.html');
  const script = path.join(dir, 'fake-browser');
  // sed turns the link's &#NN; back into characters (only &, ', " < > are escaped in it).
  const extract = `sed -n 's/.*id="continue" href="\\([^"]*\\)".*/\\1/p' "$page" | sed -e 's/&#38;/\\&/g' -e "s/&#39;/'/g" -e 's/&#34;/"/g' -e 's/&#60;/</g' -e 's/&#62;/>/g'`;
  fs.writeFileSync(
    script,
    [
      '#!/bin/sh',
      `printf '%s\\036' "$@" >> '${argvLog}'; printf '\\n' >> '${argvLog}'`,
      'for arg in "$@"; do last="$arg"; done',
      'page="${last#file://}"',
      `address=$(${extract})`,
      `printf '%s\\n' "$address" >> '${addressLog}'`,
      options.follow ? `exec curl -sS -L -o '${pageFile}' "$address"` : 'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const lines = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
  return {
    script,
    pageFile,
    argv: () => lines(argvLog).map((line) => line.split('\x1e').slice(0, -1)),
    addresses: () => lines(addressLog),
  };
}
