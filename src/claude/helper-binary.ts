// Which keybroker binary the settings run: this one, or the installed copy `--binary` names. A
// managed file outlives the admin's shell, so a download folder or a build tree is worth a warning.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../kernel/errors.ts';

/** `--binary PATH`: an absolute path to an executable file, checked before anything is written. */
export function checkedBinary(file: string, platform: NodeJS.Platform = process.platform): string {
  const absolute = platform === 'win32' ? path.win32.isAbsolute(file) : path.posix.isAbsolute(file);
  if (!absolute)
    throw new UsageError(
      `--binary "${file}" is not an absolute path`,
      "give the installed binary's full path, e.g. --binary /usr/local/bin/keybroker",
    );
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    throw new UsageError(
      `--binary ${file} cannot be used (${(error as NodeJS.ErrnoException).code})`,
      'install keybroker there first, or give the path where it is installed',
    );
  }
  if (!stat.isFile() || (platform !== 'win32' && (stat.mode & 0o111) === 0)) {
    throw new UsageError(`--binary ${file} is not an executable file`, 'give the path of the installed keybroker binary');
  }
  return file;
}

const SYSTEM_PREFIXES: Record<string, string[]> = {
  posix: [
    '/usr/bin/',
    '/usr/local/bin/',
    '/usr/sbin/',
    '/usr/local/sbin/',
    '/bin/',
    '/opt/',
    '/usr/lib/',
    '/usr/libexec/',
    '/Applications/',
    '/Library/',
  ],
  win32: ['c:\\program files\\', 'c:\\program files (x86)\\', 'c:\\programdata\\'],
};

/** True for folders an admin installs into and ordinary users cannot write (package managers, MDM). */
export function isSystemLocation(file: string, platform: NodeJS.Platform = process.platform): boolean {
  if (platform === 'win32') return SYSTEM_PREFIXES['win32']!.some((prefix) => file.toLowerCase().startsWith(prefix));
  return SYSTEM_PREFIXES['posix']!.some((prefix) => path.posix.normalize(file).startsWith(prefix));
}
