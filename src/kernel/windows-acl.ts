// Windows: whether the machine-wide config under %ProgramData% was put there by an administrator.
// A standard user can create folders in ProgramData (and owns what they create), so the folder
// and the file are used only when an administrator, SYSTEM or TrustedInstaller owns them and no
// one else may write them. Judged from each one's security descriptor in SDDL (locale-free).

/** Owners and writers that are the machine's administration, by SDDL alias or SID. */
const ADMINISTRATION = new Set(['BA', 'SY', 'S-1-5-32-544', 'S-1-5-18', 'S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464']);

/** Access bits that let a holder change a file, its ACL or its owner (write, append, delete, WRITE_DAC, WRITE_OWNER, generic all/write). */
const FILE_WRITE_BITS = 0x2 | 0x4 | 0x10000 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000;
/**
 * The same for the folder, less adding entries: ProgramData's own ACL lets Users add files and
 * folders to every folder below it, and a file a user adds there is theirs, which the file's
 * owner check refuses. Deleting or renaming the admins' file (DELETE_CHILD) is not tolerated.
 */
const FOLDER_WRITE_BITS = 0x40 | 0x10000 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000;

/** SDDL's two-letter rights, as access masks. */
const RIGHTS: Record<string, number> = {
  GA: 0x10000000,
  GW: 0x40000000,
  GR: 0x80000000,
  GX: 0x20000000,
  FA: 0x1f01ff,
  FW: 0x120116,
  FR: 0x120089,
  FX: 0x1200a0,
  SD: 0x10000,
  RC: 0x20000,
  WD: 0x40000,
  WO: 0x80000,
  CC: 0x1,
  DC: 0x2,
  LC: 0x4,
  SW: 0x8,
  RP: 0x10,
  WP: 0x20,
  DT: 0x40,
  LO: 0x80,
  CR: 0x100,
};

export interface Ace {
  allow: boolean;
  inheritOnly: boolean;
  mask: number;
  sid: string;
}

/** The owner and the DACL's entries of an SDDL string such as "O:BAG:SYD:PAI(A;OICI;FA;;;SY)". */
export function parseSddl(sddl: string): { owner: string | undefined; aces: Ace[] } {
  const owner = /O:([^:()]+?)(?=[GDS]:|$)/.exec(sddl)?.[1];
  const dacl = /D:[A-Z]*((?:\([^)]*\))*)/.exec(sddl)?.[1] ?? '';
  const aces = [...dacl.matchAll(/\(([^)]*)\)/g)].map(([, body]) => {
    const [type = '', flags = '', rights = '', , , sid = ''] = body!.split(';');
    return { allow: type === 'A', inheritOnly: flags.includes('IO'), mask: rightsMask(rights), sid };
  });
  return { owner, aces };
}

function rightsMask(rights: string): number {
  if (/^0x[0-9a-f]+$/i.test(rights)) return Number(rights);
  let mask = 0;
  for (let at = 0; at < rights.length; at += 2) mask |= RIGHTS[rights.slice(at, at + 2)] ?? 0x40000000;
  return mask;
}

/** Why a folder or file with this descriptor must not configure keybroker, or undefined when it may. */
export function administeredProblem(sddl: string, kind: 'file' | 'folder'): string | undefined {
  const { owner, aces } = parseSddl(sddl);
  if (!owner || !ADMINISTRATION.has(owner)) return `is owned by ${owner ?? 'no one known'}, not by Administrators or SYSTEM`;
  const bits = kind === 'file' ? FILE_WRITE_BITS : FOLDER_WRITE_BITS;
  const writer = aces.find((ace) => ace.allow && !ace.inheritOnly && (ace.mask & bits) !== 0 && !ADMINISTRATION.has(ace.sid));
  return writer ? `can be changed by ${writer.sid === 'BU' ? 'Users' : writer.sid}, not only by Administrators or SYSTEM` : undefined;
}

/** Reads a path's security descriptor as SDDL. */
export type SddlReader = (file: string) => string;

/** Why the machine-wide file (and the folder it is in) is not the administrators', or undefined. */
export function machineConfigAclProblem(folder: string, file: string, read: SddlReader): { path: string; problem: string } | undefined {
  for (const [target, kind] of [
    [folder, 'folder'],
    [file, 'file'],
  ] as const) {
    let problem: string | undefined;
    try {
      problem = administeredProblem(read(target), kind);
    } catch (error) {
      problem = `has a security descriptor keybroker cannot read (${(error as Error).message})`;
    }
    if (problem) return { path: target, problem };
  }
  return undefined;
}

/** The real reader: PowerShell's Get-Acl (the path travels in the environment, never in a command line to parse). Not run on Linux. */
export function powershellSddl(file: string): string {
  const { spawnSync } = process.getBuiltinModule('node:child_process');
  const result = spawnSync(
    'powershell.exe',
    ['-NoProfile', '-NonInteractive', '-Command', '(Get-Acl -LiteralPath $env:KB_ACL_TARGET).Sddl'],
    {
      env: { ...process.env, KB_ACL_TARGET: file },
      encoding: 'utf8',
      timeout: 10_000,
      windowsHide: true,
    },
  );
  if (result.status !== 0 || !result.stdout.trim())
    throw new Error(result.error?.message ?? (result.stderr.trim() || `exit ${result.status}`));
  return result.stdout.trim();
}
