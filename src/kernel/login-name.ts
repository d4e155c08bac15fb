// The OS login name `{user}` stands for with "user": "os".
import os from 'node:os';
import { ConfigError } from './errors.ts';

/**
 * The passwd entry's name, else USER / LOGNAME (USERNAME on Windows): a container or a host whose
 * directory service is down may run keybroker under a uid with no passwd entry.
 */
export function osLoginName(env: NodeJS.ProcessEnv): string {
  try {
    return os.userInfo().username;
  } catch {
    const named = env['USER'] || env['LOGNAME'] || env['USERNAME'];
    if (named) return named;
    const uid = typeof process.getuid === 'function' ? ` (uid ${process.getuid()})` : '';
    throw new ConfigError(
      `cannot tell your OS login name: this user${uid} has no passwd entry and neither USER nor LOGNAME is set`,
      'set USER to your login name (in the apiKeyHelper\'s environment), or use "user": "store" in the profile',
    );
  }
}
