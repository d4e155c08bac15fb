// Windows: %ProgramData%\keybroker is the admins' only when they own it and no one else can change
// it (a standard user can create folders in ProgramData). The decision, with the ACL reader
// injected: the real reader (PowerShell's Get-Acl) cannot run on this Linux machine.
import { describe, expect, it } from 'vitest';
import { administeredProblem, machineConfigAclProblem, parseSddl } from '../../src/kernel/windows-acl.ts';

const FOLDER = 'C:\\ProgramData\\keybroker';
const FILE = 'C:\\ProgramData\\keybroker\\config.json';
/** As an installer leaves it: admins' folder, inheriting ProgramData's "Users may add entries" (0x100116, containers only). */
const ADMIN_FOLDER = 'O:BAG:SYD:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)(A;CIID;0x100116;;;BU)';
const ADMIN_FILE = 'O:BAG:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;ID;0x1200a9;;;BU)';
/** What a standard user (S-1-5-21-…-1001) gets creating the folder: theirs, with full control. */
const USER_SID = 'S-1-5-21-1004336348-1177238915-682003330-1001';
const USER_FOLDER = `O:${USER_SID}G:${USER_SID}D:AI(A;OICI;FA;;;${USER_SID})(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;0x1200a9;;;BU)(A;CIID;0x100116;;;BU)`;

const reader = (descriptors: Record<string, string>) => (file: string) => {
  const sddl = descriptors[file];
  if (sddl === undefined) throw new Error('access denied');
  return sddl;
};

describe('the machine-wide config on Windows', () => {
  it('is used when Administrators own the folder and the file and only they and SYSTEM can change them', () => {
    expect(machineConfigAclProblem(FOLDER, FILE, reader({ [FOLDER]: ADMIN_FOLDER, [FILE]: ADMIN_FILE }))).toBeUndefined();
    expect(administeredProblem('O:SYD:PAI(A;;FA;;;SY)(A;;FA;;;S-1-5-32-544)', 'file')).toBeUndefined();
  });

  it('is not used when a standard user created the folder (they own it), even holding an admin-owned file', () => {
    expect(machineConfigAclProblem(FOLDER, FILE, reader({ [FOLDER]: USER_FOLDER, [FILE]: ADMIN_FILE }))).toEqual({
      path: FOLDER,
      problem: `is owned by ${USER_SID}, not by Administrators or SYSTEM`,
    });
  });

  it('is not used when Users may change the file, or delete entries of the folder, or rewrite an ACL', () => {
    const usersWrite = 'O:BAG:SYD:AI(A;ID;FA;;;SY)(A;ID;FA;;;BA)(A;;0x1301bf;;;BU)';
    expect(machineConfigAclProblem(FOLDER, FILE, reader({ [FOLDER]: ADMIN_FOLDER, [FILE]: usersWrite }))).toEqual({
      path: FILE,
      problem: 'can be changed by Users, not only by Administrators or SYSTEM',
    });
    expect(administeredProblem(`${ADMIN_FOLDER}(A;CI;DT;;;BU)`, 'folder')).toBe(
      'can be changed by Users, not only by Administrators or SYSTEM',
    );
    expect(administeredProblem(`O:BAG:SYD:(A;;WD;;;${USER_SID})`, 'file')).toBe(
      `can be changed by ${USER_SID}, not only by Administrators or SYSTEM`,
    );
    expect(administeredProblem('O:BAG:SYD:(A;;FW;;;AU)', 'file')).toBe('can be changed by AU, not only by Administrators or SYSTEM');
  });

  it('a file owned by a user is refused though its ACL looks right; a descriptor that cannot be read refuses too', () => {
    expect(machineConfigAclProblem(FOLDER, FILE, reader({ [FOLDER]: ADMIN_FOLDER, [FILE]: `O:${USER_SID}D:(A;;FA;;;BA)` }))?.path).toBe(
      FILE,
    );
    expect(machineConfigAclProblem(FOLDER, FILE, reader({ [FOLDER]: ADMIN_FOLDER }))).toEqual({
      path: FILE,
      problem: 'has a security descriptor keybroker cannot read (access denied)',
    });
  });

  it('reads the owner and the entries of an SDDL string; inherit-only entries do not apply to the object itself', () => {
    expect(parseSddl(ADMIN_FOLDER)).toMatchObject({ owner: 'BA' });
    expect(parseSddl(ADMIN_FOLDER).aces.find((ace) => ace.sid === 'CO')).toMatchObject({ inheritOnly: true, allow: true });
    expect(parseSddl(USER_FOLDER).owner).toBe(USER_SID);
  });
});
