// knip (npm run unused): files, exports and dependencies nothing uses. Entries are what really runs.
import type { KnipConfig } from 'knip';
import { SYSTEM_TOOLS } from './test/support/system-tools.ts';

// Programs from the base system of Debian/Ubuntu (coreutils, util-linux, libc, dpkg, apt) that tests and scripts run.
const BASE_SYSTEM = ['apt-get', 'dpkg', 'dpkg-query', 'getent', 'mount', 'umount', 'runuser', 'setpriv', 'sha256sum', 'unshare'];

const config: KnipConfig = {
  entry: [
    // The CLI (bundled from bin/keybroker.ts), the executable's boot, the build and training scripts, the demo.
    'bin/*.ts',
    // Loaded by file name at run time (src/loader/chunks.ts), each bundled as its own chunk by bin/build.ts.
    'providers/{aws,azure,gcp,vault}.ts',
    'src/sso/oidc-lib.ts',
    'bench/*.ts',
    'release/*.{ts,cjs}',
    // stryker.config.json's test set; a README capture run by hand (docs/commands.md).
    'vitest.mutation.config.ts',
    'test/doctor/capture-screen.ts',
  ],
  project: ['bin/**/*.ts', 'src/**/*.ts', 'providers/**/*.ts', 'bench/**/*.ts', 'release/**/*.{ts,cjs}', 'test/**/*.ts', '*.ts'],
  // What the tests run that npm does not bring is listed once, in test/support/system-tools.ts.
  ignoreBinaries: [...SYSTEM_TOOLS.map((tool) => tool.command.split('/').at(-1) ?? tool.command), 'msiinfo', ...BASE_SYSTEM],
  ignoreDependencies: [
    // Run by file: node_modules/.bin/claude (test/support/claude.ts) and node_modules/.bin/depcruise (test/architecture.test.ts).
    '@anthropic-ai/claude-code',
    'dependency-cruiser',
    // The SDKs' own dependencies, used as the SDK's copy: its types (@smithy/types, @azure/core-auth), its gRPC (google-gax)
    // and the protobufjs the fake GCP server reads google-gax's protos with.
    '@smithy/types',
    '@azure/core-auth',
    'google-gax',
    'protobufjs',
  ],
};

export default config;
