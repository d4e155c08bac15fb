// The executable's entry point (bundled by bin/build.ts into dist/keybroker).
import { main } from '../src/cli.ts';
import { keychainState } from '../src/cache/keychain.ts';
import { abandonedWork } from '../src/doctor/check.ts';

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  // A keychain call that never returned, or a doctor check given up on, would keep the process alive.
  if (keychainState.hung || abandonedWork.pending) process.exit(code);
});
