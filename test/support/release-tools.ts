// The system tools the release build and its tests need, as a list of its own, in the shape of the
// one list of the test set-up (SystemTool: command, apt packages, what needs it), to be merged
// into that list. Until then the release tests install what is missing through ensureReleaseTools()
// (as root on Debian/Ubuntu, with apt-get), or stop naming the exact command.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';

export interface ReleaseTool {
  /** A command on PATH, or an absolute path that must exist. */
  command: string;
  apt: string[];
  neededBy: string;
}

export const RELEASE_TOOLS: ReleaseTool[] = [
  { command: 'qemu-aarch64', apt: ['qemu-user'], neededBy: 'running keybroker-linux-arm64 on an x86-64 machine' },
  { command: '/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1', apt: ['libc6-arm64-cross'], neededBy: "the arm64 C library qemu-aarch64 -L loads" },
  { command: '/usr/aarch64-linux-gnu/lib/libstdc++.so.6', apt: ['libstdc++6-arm64-cross'], neededBy: "the arm64 C++ library Node links" },
  { command: '/usr/aarch64-linux-gnu/lib/libgcc_s.so.1', apt: ['libgcc-s1-arm64-cross'], neededBy: 'the arm64 libgcc Node links' },
  { command: '/usr/aarch64-linux-gnu/lib/libatomic.so.1', apt: ['libatomic1-arm64-cross'], neededBy: 'the arm64 libatomic Node 26 links' },
  { command: 'llvm-strip', apt: ['llvm'], neededBy: 'stripping the linux-arm64 binary (binutils strip knows x86 only)' },
  { command: 'strip', apt: ['binutils'], neededBy: 'stripping the linux-x64 binary' },
  { command: 'osslsigncode', apt: ['osslsigncode'], neededBy: "removing Node's Authenticode signature before injecting, and signing keybroker-win-x64.exe" },
  { command: 'rpmbuild', apt: ['rpm'], neededBy: 'the .rpm packages' },
  { command: 'wixl', apt: ['wixl'], neededBy: 'the .msi' },
  { command: 'dpkg-deb', apt: ['dpkg'], neededBy: 'the .deb packages' },
  { command: 'zip', apt: ['zip'], neededBy: 'the Windows .zip' },
  { command: 'file', apt: ['file'], neededBy: "checking each binary's platform" },
];

function present(tool: ReleaseTool): boolean {
  if (tool.command.startsWith('/')) return fs.existsSync(tool.command);
  return spawnSync('sh', ['-c', `command -v ${tool.command}`], { stdio: 'ignore' }).status === 0;
}

/** Installs the missing release tools (root on Debian/Ubuntu), else throws naming the command to run. */
export function ensureReleaseTools(tools: ReleaseTool[] = RELEASE_TOOLS): void {
  const missing = tools.filter((tool) => !present(tool));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((tool) => tool.apt))];
  const command = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (process.getuid?.() !== 0 || !fs.existsSync('/usr/bin/apt-get') || process.env['KEYBROKER_TEST_NO_INSTALL'] === '1') {
    throw new Error(`missing ${missing.map((tool) => `${tool.command} (${tool.neededBy})`).join(', ')}: run ${command}`);
  }
  execFileSync('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const still = tools.filter((tool) => !present(tool));
  if (still.length) throw new Error(`still missing after apt-get: ${still.map((tool) => tool.command).join(', ')}`);
}
