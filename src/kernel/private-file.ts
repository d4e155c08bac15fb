// Opening a file only another process of this user could have written: cache entries, state
// records, lock files, the keychain addon. Opened without following a link and without blocking
// (a FIFO at the path would otherwise hang the open forever), then judged on the descriptor
// (fstat), so what is checked is what is read.
import fs from 'node:fs';

/** Why a file may not be used, or undefined when it may. */
export type FileProblem = string | undefined;

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);

function myUid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined;
}

/** What is wrong with a file (or folder) with this stat for holding this user's private data. */
export function privateStatProblem(stat: fs.Stats, kind: 'file' | 'folder', platform: NodeJS.Platform = process.platform): FileProblem {
  if (kind === 'file' && !stat.isFile()) return stat.isFIFO() ? 'is a FIFO, not a regular file' : stat.isSymbolicLink() ? 'is a symbolic link' : 'is not a regular file';
  if (kind === 'folder' && !stat.isDirectory()) return 'is not a folder';
  const uid = myUid();
  if (uid !== undefined && stat.uid !== uid) return `belongs to another user (uid ${stat.uid})`;
  if (platform !== 'win32' && (stat.mode & 0o022) !== 0) return `can be written by other users (mode ${(stat.mode & 0o777).toString(8)})`;
  return undefined;
}

/** A folder's problem for holding private files: not ours, writable by others, not a folder. ENOENT is thrown. */
export function privateDirProblem(dir: string): FileProblem {
  return privateStatProblem(fs.lstatSync(dir), 'folder');
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
