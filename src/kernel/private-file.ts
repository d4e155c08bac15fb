// Opening a file only another process of this user could have written: cache entries, state
// records, lock files, the keychain addon. Opened without following a link and without blocking
// (a FIFO at the path would otherwise hang the open forever), then judged on the descriptor
// (fstat), so what is checked is what is read.
import fs from 'node:fs';
import path from 'node:path';

/** Why a file may not be used, or undefined when it may. */
type FileProblem = string | undefined;

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** What a trust root (a config file and its folders) may be beyond a private file: root's, and a sticky shared folder such as /tmp. */
interface TrustRules {
  rootMayOwn?: boolean;
  stickyFolderMayBeShared?: boolean;
}

/** What is wrong with a file (or folder) with this stat for holding this user's private data. */
export function privateStatProblem(
  stat: fs.Stats,
  kind: 'file' | 'folder',
  platform: NodeJS.Platform = process.platform,
  rules: TrustRules = {},
): FileProblem {
  if (kind === 'file' && !stat.isFile())
    return stat.isFIFO() ? 'is a FIFO, not a regular file' : stat.isSymbolicLink() ? 'is a symbolic link' : 'is not a regular file';
  if (kind === 'folder' && !stat.isDirectory()) return 'is not a folder';
  const uid = myUid();
  if (uid !== undefined && stat.uid !== uid && !(rules.rootMayOwn && stat.uid === 0)) return `belongs to another user (uid ${stat.uid})`;
  // A sticky folder (/tmp) lets others add files, never rename or replace ours.
  const sharedButSticky = rules.stickyFolderMayBeShared && kind === 'folder' && (stat.mode & 0o1000) !== 0;
  if (platform !== 'win32' && (stat.mode & 0o022) !== 0 && !sharedButSticky)
    return `can be written by other users (mode ${(stat.mode & 0o777).toString(8)})`;
  return undefined;
}

export class UnsafeFile extends Error {
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file} ${problem}`);
    this.name = 'UnsafeFile';
    this.file = file;
    this.problem = problem;
  }
}

/**
 * Opens `file` for reading when it is a regular file of this user that no one else can write.
 * undefined when it does not exist; UnsafeFile when it exists but must not be used; other open
 * errors (EACCES, EIO) are thrown as they are. The caller closes the descriptor.
 */
export function openPrivateFile(file: string): { fd: number; stat: fs.Stats } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // O_NOFOLLOW on a link: ELOOP (Linux), EMLINK (FreeBSD), EFTYPE (macOS).
    if (code === 'ELOOP' || code === 'EMLINK' || code === 'EFTYPE') throw new UnsafeFile(file, 'is a symbolic link');
    throw error;
  }
  try {
    const stat = fs.fstatSync(fd);
    const problem = privateStatProblem(stat, 'file');
    if (problem) throw new UnsafeFile(file, problem);
    return { fd, stat };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** The text of a private file (see openPrivateFile), or undefined when there is none. */
export function readPrivateFile(file: string): string | undefined {
  const opened = openPrivateFile(file);
  if (!opened) return undefined;
  try {
    return fs.readFileSync(opened.fd, 'utf8');
  } finally {
    fs.closeSync(opened.fd);
  }
}

const TRUST_ROOT_RULES: TrustRules = { rootMayOwn: true, stickyFolderMayBeShared: true };

/**
 * The text of a trust root (a config file: it chooses where credentials go), or undefined when
 * there is none. As OpenSSH judges its config: a link is followed and its target judged; the
 * target must be a regular file of this user or root that no one else can write, in folders (up
 * to /) of this user or root that no one else can write unless sticky. Opened without blocking,
 * judged on the descriptor. UnsafeFile names the file or the folder at fault.
 */
export function readTrustRoot(file: string, platform: NodeJS.Platform = process.platform): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const problem = privateStatProblem(fs.fstatSync(fd), 'file', platform, TRUST_ROOT_RULES);
    if (problem) throw new UnsafeFile(file, problem);
    if (platform !== 'win32') checkTrustRootFolders(openedPath(fd, file), platform);
    return fs.readFileSync(fd, 'utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** Where the descriptor really points (Linux: its /proc link, so no second lookup can differ), else the resolved path. */
function openedPath(fd: number, file: string): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return fs.realpathSync(file);
  }
}

/** Every folder above `real` (a path without links), to /: one that others could write could swap the file. */
function checkTrustRootFolders(real: string, platform: NodeJS.Platform): void {
  for (let dir = path.dirname(real); ; dir = path.dirname(dir)) {
    const problem = privateStatProblem(fs.statSync(dir), 'folder', platform, TRUST_ROOT_RULES);
    if (problem) throw new UnsafeFile(dir, problem);
    if (path.dirname(dir) === dir) return;
  }
}
