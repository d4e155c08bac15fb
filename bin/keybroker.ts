// The executable's entry point (bundled by bin/build.ts into dist/keybroker).
import { main } from '../src/cli.ts';
import { keychainState } from '../src/cache/keychain.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A keychain call that never returned would keep the process alive (and Claude Code waiting).
  if (keychainState.hung) process.exit(code);
});
