#!/usr/bin/env node
// `keybroker` on the PATH after `npm install -g keybroker`: runs this platform's binary from its
// package (an optionalDependency npm installed by os/cpu). `keybroker setup` run through here writes
// the binary's own path into apiKeyHelper, so Claude Code never starts Node for this file.
'use strict';
const { spawnSync } = require('node:child_process');

const PACKAGES = {
  'linux x64': '@keybroker/linux-x64',
  'linux arm64': '@keybroker/linux-arm64',
  'darwin arm64': '@keybroker/darwin-arm64',
  'darwin x64': '@keybroker/darwin-x64',
  'win32 x64': '@keybroker/win32-x64',
};
const CONFIG_ERROR = 3;

function fail(message, fix) {
  process.stderr.write(`keybroker: ${message}: ${fix}\n`);
  process.exit(CONFIG_ERROR);
}

const name = PACKAGES[`${process.platform} ${process.arch}`];
if (!name)
  fail(
    `no keybroker binary is published for ${process.platform}-${process.arch}`,
    `use one of ${Object.keys(PACKAGES).join(', ')}, or build it: npm run build:binary`,
  );
let binary;
try {
  binary = require.resolve(`${name}/bin/keybroker${process.platform === 'win32' ? '.exe' : ''}`);
} catch {
  fail(
    `the package ${name} is not installed (optional dependencies were left out)`,
    'reinstall without --omit=optional: npm install -g keybroker',
  );
}
const result = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit', windowsHide: true });
if (result.error) fail(`cannot run ${binary} (${result.error.code ?? result.error.message})`, 'reinstall: npm install -g keybroker');
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 1);
