// Config files are trust roots (docs/security.md): through the built binary, a config that another
// user can write or owns, a FIFO, a path variable that leads into /proc (the folder Claude Code
// runs in), an MCP helper's command line that empties its variables or points at the project's
// own files, and the fields a machine-wide file enforces.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runBinary } from '../support/binary.ts';
import { awsConfig, makeTestHome, type TestHome } from '../support/e2e-home.ts';
import { OTHER_UID, chownToOther, runBinaryAsOther } from '../support/other-user.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { processStart, expectWithinBound } from '../support/time-bounds.ts';

/** A store address that only counts who asked: whoever writes the config chooses it, and would receive the developer's credentials. */
interface Recorder {
  url: string;
  requests: number;
  stop(): Promise<void>;
}
async function startRecorder(): Promise<Recorder> {
  const recorder = { requests: 0 } as Recorder;
  const server = http.createServer((request, response) => {
    recorder.requests++;
    request.resume();
    response.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' }).end('{"__type":"ValidationException","message":"recorded"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  recorder.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  recorder.stop = () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
  return recorder;
}

let recorder: Recorder;
const homes: TestHome[] = [];
const scratches: string[] = [];
beforeAll(async () => {
  recorder = await startRecorder();
});
afterAll(async () => recorder?.stop());
afterEach(() => {
  for (const home of homes.splice(0)) home.remove();
  for (const dir of scratches.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
function newHome(config?: unknown): TestHome {
  const home = makeTestHome(config);
  homes.push(home);
  return home;
}
function scratch(mode = 0o755): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kb-cfgtrust-'));
  fs.chmodSync(dir, mode);
  scratches.push(dir);
  return dir;
}
/** A config whose store is the recorder: used, it sends the recorder a request. */
const plantedConfig = (secret = 'planted/{user}') => awsConfig(recorder.url, { secret, cache: { backend: 'none' } });

describe('config files are trust roots', () => {
  it('a user file another user can write (mode 666), or one that belongs to another user, is refused: exit 3, the file and the fix, the store never asked', async () => {
    const home = newHome(plantedConfig());
    fs.chmodSync(home.configFile, 0o666);
    const writable = await runBinary([], { env: home.env() });
    expect(writable).toMatchObject({ code: 3, stdout: '' });
    expect(writable.stderr).toBe(
      `keybroker: config file ${home.configFile} can be written by other users (mode 666): not used (whoever can write it chooses where your credentials go): run 'chmod go-w ${home.configFile}'\n`,
    );

    fs.chmodSync(home.configFile, 0o644);
    fs.chownSync(home.configFile, OTHER_UID, OTHER_UID);
    const theirs = await runBinary([], { env: home.env() });
    expect(theirs).toMatchObject({ code: 3, stdout: '' });
    expect(theirs.stderr).toMatch(
      new RegExp(
        `^keybroker: config file ${home.configFile} belongs to another user \\(uid 65534\\): not used .*: make it yours or root's \\(chown\\), or remove it\\n$`,
      ),
    );
    expect(recorder.requests).toBe(0);
  });

  it('the machine-wide file is judged the same way, and so is the folder it is in (unless sticky, like /tmp)', async () => {
    const home = newHome(awsConfig('http://127.0.0.1:9'));
    const etc = scratch(0o755);
    const machine = path.join(etc, 'config.json');
    fs.writeFileSync(machine, JSON.stringify(plantedConfig()), { mode: 0o644 });
    fs.chmodSync(machine, 0o664);
    const env = home.env({ KEYBROKER_MACHINE_CONFIG: machine, KEYBROKER_CONFIG: undefined });
    const groupWritable = await runBinary([], { env });
    expect(groupWritable).toMatchObject({ code: 3, stdout: '' });
    expect(groupWritable.stderr).toContain(`config file ${machine} can be written by other users (mode 664)`);

    fs.chmodSync(machine, 0o644);
    fs.chmodSync(etc, 0o777);
    const openFolder = await runBinary([], { env });
    expect(openFolder).toMatchObject({ code: 3, stdout: '' });
    expect(openFolder.stderr).toContain(`config file ${machine} is in ${etc}, which can be written by other users (mode 777): not used`);
    expect(openFolder.stderr).toContain(`run 'chmod go-w ${etc}' (or make the folder sticky: chmod +t)`);

    fs.chmodSync(etc, 0o1777);
    const sticky = await runBinary(['config'], { env });
    expect(sticky).toMatchObject({ code: 0, stderr: '' });
    expect(sticky.stdout).toContain(`(${machine})`);
    expect(recorder.requests).toBe(0);
  });

  it('a link is judged by its target (dotfiles are fine); a link to a file others can write is not', async () => {
    const home = newHome();
    const dotfiles = path.join(home.dir, 'dotfiles');
    fs.mkdirSync(dotfiles, { mode: 0o700 });
    const target = path.join(dotfiles, 'keybroker.json');
    fs.writeFileSync(target, JSON.stringify(awsConfig('http://127.0.0.1:9', { secret: 'from-dotfiles' })), { mode: 0o600 });
    fs.symlinkSync(target, home.configFile);
    const linked = await runBinary(['config'], { env: home.env() });
    expect(linked).toMatchObject({ code: 0, stderr: '' });
    expect(linked.stdout).toContain('"from-dotfiles"');

    fs.chmodSync(target, 0o646);
    const open = await runBinary(['config'], { env: home.env() });
    expect(open.code).toBe(3);
    expect(open.stderr).toContain(`config file ${home.configFile} can be written by other users (mode 646)`);
  });

  it('a FIFO at the config path does not hang get: exit 3 at once, naming it', async () => {
    const yardstick = await processStart();
    const home = newHome();
    execFileSync('mkfifo', ['-m', '600', home.configFile]);
    const result = await runBinary([], { env: home.env(), timeoutMs: 20_000 });
    expect(result).toMatchObject({ code: 3, signal: null, stdout: '' });
    expect(result.stderr).toBe(
      `keybroker: config file ${home.configFile} is a FIFO, not a regular file: not used: replace it with a regular JSON file\n`,
    );
    await expectWithinBound('get with a FIFO as its config', result.ms, 0, yardstick);
  });

  it('run as another user (uid 65534): a machine-wide file of root is used; one of root that others can write is not', async () => {
    const home = newHome(awsConfig('http://127.0.0.1:9', { secret: 'theirs' }));
    chownToOther(home.dir);
    const etc = scratch(0o755);
    const machine = path.join(etc, 'config.json');
    fs.writeFileSync(machine, JSON.stringify({ profiles: { default: { cache: { refreshAfter: '7m' } } } }), { mode: 0o644 });
    const env = home.env({ KEYBROKER_MACHINE_CONFIG: machine });
    const used = await runBinaryAsOther(['config'], { env });
    expect(used).toMatchObject({ code: 0, stderr: '' });
    expect(used.stdout).toMatch(/cache\.refreshAfter\s+"7m"\s+\(/);

    fs.chmodSync(machine, 0o666);
    const refused = await runBinaryAsOther(['config'], { env });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`config file ${machine} can be written by other users (mode 666)`);
  });
});

describe('path variables cannot lead into the project through /proc', () => {
  it("KEYBROKER_CONFIG, KEYBROKER_MACHINE_CONFIG, XDG_CONFIG_HOME or HOME at /proc/self/cwd (or a link to it) are ignored with one line; the repo's file is never read", async () => {
    const home = newHome(awsConfig('http://127.0.0.1:9', { secret: 'the-developers' }));
    const project = scratch(0o755);
    fs.writeFileSync(path.join(project, 'kb.json'), JSON.stringify(plantedConfig('from-the-repo')));
    fs.mkdirSync(path.join(project, 'keybroker'));
    fs.writeFileSync(path.join(project, 'keybroker', 'config.json'), JSON.stringify(plantedConfig('from-the-repo')));
    const link = path.join(home.dir, 'innocent.json');
    fs.symlinkSync('/proc/self/cwd/kb.json', link);
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ KEYBROKER_CONFIG: '/proc/self/cwd/kb.json' }, 'KEYBROKER_CONFIG'],
      [{ KEYBROKER_CONFIG: link }, 'KEYBROKER_CONFIG'],
      [{ KEYBROKER_MACHINE_CONFIG: '/proc/self/cwd/kb.json' }, 'KEYBROKER_MACHINE_CONFIG'],
      [{ KEYBROKER_CONFIG: undefined, XDG_CONFIG_HOME: '/proc/self/cwd' }, 'XDG_CONFIG_HOME'],
      [{ KEYBROKER_CONFIG: undefined, XDG_CONFIG_HOME: undefined, HOME: '/proc/self/cwd/..' }, 'HOME'],
    ];
    for (const [variables, name] of cases) {
      const result = await runBinary(['config'], { env: home.env(variables), cwd: project });
      expect(result.stderr.split('\n')[0]).toBe(
        `keybroker: ignoring ${name}: it leads into /proc (/proc/self/cwd is the folder Claude Code runs in, your project's, which would then choose where keys are kept and sent); set a path outside /proc`,
      );
      expect(result.stdout).not.toContain('from-the-repo');
    }
    const get = await runBinary([], { env: home.env({ KEYBROKER_CONFIG: '/proc/self/cwd/kb.json' }), cwd: project });
    expect(get.stdout).toBe('');
    expect(recorder.requests).toBe(0);
  });
});

describe("the MCP allow-list holds whatever the helper's command line says", () => {
  let moto: Moto;
  const KEY = 'sk-test-cfgtrust-mcp';
  const SECRET = 'cfgtrust/mcp/key';
  beforeAll(async () => {
    moto = await startMoto();
    await moto.aws(['secretsmanager', 'create-secret', '--name', SECRET, '--secret-string', KEY]);
  });
  afterAll(async () => moto?.stop());
  const listed = () => ({
    ...awsConfig(moto.endpoint, { secret: SECRET, cache: { backend: 'none' } }),
    mcpServers: { corp: { url: 'http://127.0.0.1:1/corp' } },
  });

  it('an emptied CLAUDE_CODE_MCP_SERVER_URL is refused, not read as "no MCP server": headers and get print no key', async () => {
    const home = newHome(listed());
    for (const variables of [
      { CLAUDE_CODE_MCP_SERVER_URL: '', CLAUDE_CODE_MCP_SERVER_NAME: 'corp' },
      { CLAUDE_CODE_MCP_SERVER_URL: '' },
      { CLAUDE_CODE_MCP_SERVER_NAME: 'corp' },
    ]) {
      for (const command of ['headers', 'get']) {
        const result = await runBinary([command], { env: home.env(variables) });
        expect(result).toMatchObject({ code: 3, stdout: '' });
        expect(result.stderr).toMatch(
          /^keybroker: keybroker runs as an MCP headersHelper.* CLAUDE_CODE_MCP_SERVER_URL is (empty|not set), so the server that would receive the key is unknown/,
        );
        expect(result.stderr).not.toContain(KEY);
      }
    }
    // The listed server still gets its key, from either command.
    const served = await runBinary(['get'], {
      env: home.env({ CLAUDE_CODE_MCP_SERVER_URL: 'http://127.0.0.1:1/corp/mcp', CLAUDE_CODE_MCP_SERVER_NAME: 'corp' }),
    });
    expect(served).toMatchObject({ code: 0, stdout: KEY });
  });

  it('get under an unlisted MCP server prints no key', async () => {
    const home = newHome(listed());
    const result = await runBinary(['get'], {
      env: home.env({ CLAUDE_CODE_MCP_SERVER_URL: 'https://attacker.example/mcp', CLAUDE_CODE_MCP_SERVER_NAME: 'corp' }),
    });
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toContain('is not listed in keybroker\'s "mcpServers"');
  });

  it('a relative --config is refused; mcpServers of a file in the project (by --config, KEYBROKER_CONFIG or HOME) are not used', async () => {
    const home = newHome(awsConfig(moto.endpoint, { secret: SECRET, cache: { backend: 'none' } }));
    const project = scratch(0o755);
    fs.mkdirSync(path.join(project, '.git'));
    fs.mkdirSync(path.join(project, 'sub'));
    const repoConfig = {
      ...awsConfig(moto.endpoint, { secret: SECRET, cache: { backend: 'none' } }),
      mcpServers: { evil: { url: 'https://attacker.example/' } },
    };
    fs.writeFileSync(path.join(project, 'kb.json'), JSON.stringify(repoConfig));
    fs.mkdirSync(path.join(project, '.config', 'keybroker'), { recursive: true });
    fs.writeFileSync(path.join(project, '.config', 'keybroker', 'config.json'), JSON.stringify(repoConfig));
    const mcp = { CLAUDE_CODE_MCP_SERVER_URL: 'https://attacker.example/mcp', CLAUDE_CODE_MCP_SERVER_NAME: 'evil' };

    const relative = await runBinary(['headers', '--config', 'kb.json'], { env: home.env(mcp), cwd: project });
    expect(relative).toMatchObject({ code: 3, stdout: '' });
    expect(relative.stderr).toMatch(/^keybroker: --config kb\.json is a relative path, and keybroker runs as an MCP headersHelper/);

    const attempts: [string[], NodeJS.ProcessEnv][] = [
      [['headers', '--config', path.join(project, 'kb.json')], home.env(mcp)],
      [['headers'], home.env({ ...mcp, KEYBROKER_CONFIG: path.join(project, 'kb.json') })],
      [['headers'], home.env({ ...mcp, KEYBROKER_CONFIG: undefined, XDG_CONFIG_HOME: undefined, HOME: project })],
    ];
    for (const [args, env] of attempts) {
      const result = await runBinary(args, { env, cwd: path.join(project, 'sub') });
      expect(result).toMatchObject({ code: 3, stdout: '' });
      expect(result.stderr).toContain('is not listed in keybroker\'s "mcpServers"');
    }
    // The same file outside the project lists the server: the location is what is refused.
    const outside = path.join(home.dir, 'kb.json');
    fs.copyFileSync(path.join(project, 'kb.json'), outside);
    const elsewhere = await runBinary(['headers', '--config', outside], { env: home.env(mcp), cwd: path.join(project, 'sub') });
    expect(elsewhere).toMatchObject({ code: 0 });
  });

  it('a machine-wide file that enforces "mcpServers" is the only list', async () => {
    const home = newHome(listed());
    const etc = scratch(0o755);
    const machine = path.join(etc, 'config.json');
    fs.writeFileSync(machine, JSON.stringify({ enforce: ['mcpServers'], mcpServers: { tools: { url: 'https://tools.example/' } } }), {
      mode: 0o644,
    });
    const result = await runBinary(['headers'], {
      env: home.env({
        KEYBROKER_MACHINE_CONFIG: machine,
        CLAUDE_CODE_MCP_SERVER_URL: 'http://127.0.0.1:1/corp/mcp',
        CLAUDE_CODE_MCP_SERVER_NAME: 'corp',
      }),
    });
    expect(result).toMatchObject({ code: 3, stdout: '' });
    expect(result.stderr).toContain('(listed: tools (https://tools.example/))');
  });
});

describe('the machine-wide file binds the fields it enforces', () => {
  function machineFile(data: unknown): string {
    const etc = scratch(0o755);
    const machine = path.join(etc, 'config.json');
    fs.writeFileSync(machine, JSON.stringify(data), { mode: 0o644 });
    return machine;
  }
  const corp = {
    store: { type: 'aws', region: 'us-east-1', endpoint: 'http://127.0.0.1:9' },
    secret: 'corp/{user}',
    gateway: 'https://llm.corp.example',
  };

  it('a user file, a KEYBROKER_* variable or another profile that sets an enforced field otherwise is an error naming the machine file; the same value is fine', async () => {
    const machine = machineFile({ enforce: ['store', 'secret', 'gateway', 'allowInsecureHttp'], profiles: { default: corp } });
    const home = newHome({ profiles: { default: { secret: 'someone-else/key' } } });
    const env = home.env({ KEYBROKER_MACHINE_CONFIG: machine });
    const userFile = await runBinary([], { env });
    expect(userFile).toMatchObject({ code: 3, stdout: '' });
    expect(userFile.stderr).toBe(
      `keybroker: profile "default": field "secret" is enforced by the machine-wide file ${machine}, and ${home.configFile} sets it otherwise: remove "secret" from profile "default" in ${home.configFile} (ask your admin to change ${machine})\n`,
    );

    home.writeConfig({ profiles: { default: { secret: 'corp/{user}', cache: { backend: 'none' } } } });
    const variable = await runBinary([], { env: { ...env, KEYBROKER_SECRET: 'any/secret/i/can/read' } });
    expect(variable).toMatchObject({ code: 3, stdout: '' });
    expect(variable.stderr).toMatch(
      /field "secret" is enforced by the machine-wide file .*, and KEYBROKER_SECRET sets it otherwise: unset KEYBROKER_SECRET\n$/,
    );

    home.writeConfig({ profiles: { mine: { store: { type: 'aws', region: 'us-east-1', endpoint: recorder.url }, secret: 'x' } } });
    const ownProfile = await runBinary(['--profile', 'mine'], { env });
    expect(ownProfile.code).toBe(3);
    expect(ownProfile.stderr).toContain('field "store" is enforced by the machine-wide file');
    expect(recorder.requests).toBe(0);

    home.writeConfig({ profiles: { default: { secret: 'corp/{user}', cache: { backend: 'none' } } } });
    const same = await runBinary(['config'], { env });
    expect(same).toMatchObject({ code: 0, stderr: '' });
    expect(same.stdout).toMatch(new RegExp(`secret\\s+"corp/\\{user\\}"\\s+\\(${home.configFile}; enforced by the machine-wide file\\)`));
  });

  it('a flag cannot move an enforced gateway: env --gateway elsewhere is refused before the store is asked', async () => {
    const machine = machineFile({
      enforce: ['gateway'],
      profiles: { default: { ...corp, store: { ...corp.store, endpoint: recorder.url } } },
    });
    const home = newHome({ profiles: {} });
    const env = home.env({ KEYBROKER_MACHINE_CONFIG: machine });
    const moved = await runBinary(['env', '--format', 'shell', '--gateway', 'https://elsewhere.example'], { env });
    expect(moved).toMatchObject({ code: 3, stdout: '' });
    expect(moved.stderr).toBe(
      `keybroker: profile "default": field "gateway" is enforced by the machine-wide file ${machine}, and --gateway https://elsewhere.example sets it otherwise: drop --gateway\n`,
    );
    expect(recorder.requests).toBe(0);
  });

  it('"enforce" in a user file is an error: only the admins\' file binds', async () => {
    const home = newHome({ enforce: ['store'], ...awsConfig('http://127.0.0.1:9') });
    const result = await runBinary(['config'], { env: home.env() });
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`${home.configFile}: field "enforce" is for the machine-wide file only`);
  });

  it('keybroker config names the one variable that set each field, and the layers it overrode', async () => {
    const machine = machineFile({ profiles: { default: { ...corp, cache: { refreshAfter: '1h' } } } });
    const home = newHome({ profiles: { default: { secret: 'user/{user}' } } });
    const env = home.env({
      KEYBROKER_MACHINE_CONFIG: machine,
      KEYBROKER_SECRET: 'env/{user}',
      KEYBROKER_CACHE_BACKEND: 'none',
      KEYBROKER_TIMEOUT: '3s',
    });
    const result = await runBinary(['config'], { env });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const line = (field: string) => result.stdout.split('\n').find((row) => row.startsWith(`${field} `)) ?? '';
    expect(line('secret')).toMatch(new RegExp(`"env/\\{user\\}"\\s+\\(KEYBROKER_SECRET; over ${machine}, ${home.configFile}\\)$`));
    expect(line('cache.backend')).toMatch(/"none"\s+\(KEYBROKER_CACHE_BACKEND\)$/);
    expect(line('timeout')).toMatch(/"3s"\s+\(KEYBROKER_TIMEOUT\)$/);
    expect(line('cache.refreshAfter')).toMatch(new RegExp(`"1h"\\s+\\(${machine}\\)$`));
    const json = JSON.parse((await runBinary(['config', '--json'], { env })).stdout) as {
      values: { field: string; source: string; why: string; overrides: string[] }[];
    };
    expect(json.values.find((row) => row.field === 'secret')).toMatchObject({
      source: 'KEYBROKER_SECRET',
      why: 'latest',
      overrides: [machine, home.configFile],
    });
  });
});
