// The floor for a warm `get`: a single executable from the same Node binary, built the same way
// as dist/keybroker (code cache, stripped), whose whole program prints a constant.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = path.resolve(import.meta.dirname, '..');

/** Builds the bare executable in `dir` and returns its path. */
export function buildBareSea(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'main.cjs'), "process.stdout.write('sk-test-constant');\n");
  // The same SEA options as dist/keybroker (pkg.config.json), minus its program and assets.
  const {
    main: _main,
    output: _output,
    assets: _assets,
    ...options
  } = JSON.parse(fs.readFileSync(path.join(root, 'pkg.config.json'), 'utf8')) as Record<string, unknown>;
  const config = { ...options, main: 'main.cjs', output: 'bare.blob' };
  fs.writeFileSync(path.join(dir, 'sea.json'), JSON.stringify(config));
  execFileSync(process.execPath, ['--experimental-sea-config', 'sea.json'], { cwd: dir, stdio: 'ignore' });
  const binary = path.join(dir, 'bare');
  fs.copyFileSync(process.execPath, binary);
  fs.chmodSync(binary, 0o755);
  if (process.platform === 'linux') {
    try {
      execFileSync('strip', [binary], { stdio: 'ignore' });
    } catch {
      // as in bin/build.ts: optional
    }
  }
  const postject = path.join(path.dirname(require.resolve('postject/package.json')), 'dist', 'cli.js');
  execFileSync(
    process.execPath,
    [
      postject,
      binary,
      'NODE_SEA_BLOB',
      path.join(dir, 'bare.blob'),
      '--sentinel-fuse',
      'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
      ...(process.platform === 'darwin' ? ['--macho-segment-name', 'NODE_SEA'] : []),
    ],
    { stdio: 'ignore' },
  );
  if (process.platform === 'darwin') execFileSync('codesign', ['--sign', '-', binary]);
  return binary;
}
