// The executable's entry point (bundled by bin/build.ts into dist/keybroker).
import { main } from '../src/cli/main.ts';
import { keychainState } from '../src/cache/keychain.ts';

main(process.argv.slice(2)).then((code) => {
  // The answer is printed (synchronously) and every step awaited: leave now. Work given up on
  // would otherwise keep the process alive, and Claude Code waiting: a keychain call that never
  // returned, or an SDK's socket still in a TLS handshake with a store that never answered
  // (gRPC does not close a connection attempt when its call is cancelled).
  if (keychainState.hung) exitAbandoningHungCall(code);
  process.exit(code);
});

/**
 * A keychain call that never returns holds a libuv worker thread, and process.exit() joins those
 * threads at exit, so it hangs too (measured: a locked keyring whose prompt is never answered
 * kept `process.exit(0)` alive until killed). Replacing the process image ends every thread at
 * once and still exits with our code; the answer was already written synchronously.
 */
function exitAbandoningHungCall(code: number): void {
  if (process.platform !== 'win32' && typeof process.execve === 'function') {
    try {
      process.execve('/bin/sh', ['sh', '-c', `exit ${code}`], {});
    } catch {
      // Fall through to the best remaining way out.
    }
  }
  process.exit(code);
}
