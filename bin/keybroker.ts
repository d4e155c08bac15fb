// The executable's entry point (bundled by bin/build.ts into dist/keybroker).
import { main } from '../src/cli.ts';

main(process.argv.slice(2)).then((code) => {
  // The answer is printed (synchronously) and every step awaited: leave now. Work given up on
  // would otherwise keep the process alive, and Claude Code waiting: a keychain call that never
  // returned, or an SDK's socket still in a TLS handshake with a store that never answered
  // (gRPC does not close a connection attempt when its call is cancelled).
  process.exit(code);
});
