// `"user": "os"` with the AWS store: doctor and `admin policy` warn where the laptop login and the
// IAM name can differ, because the policy lets each developer read only the secret named after the IAM name.
import { describe, expect, it } from 'vitest';
import { userSourceMismatch } from '../../src/secret/user-source.ts';

const FIX =
  'set "user": "store" in the profile (the name AWS sees), or keep "user": "os" only where every laptop login equals the IAM user name';
const POLICY = `the AWS policy ('admin policy') lets each developer read only the secret named after their AWS name (\${aws:username})`;

describe('userSourceMismatch', () => {
  const awsOs = { store: { type: 'aws' }, user: 'os' } as const;

  it('names both names and the pick to make when the OS login differs from the IAM name', () => {
    expect(userSourceMismatch(awsOs, 'alice.smith', 'alice')).toEqual({
      finding: `{user} comes from the OS login "alice" while AWS knows you as "alice.smith", and ${POLICY}`,
      fix: FIX,
    });
  });

  it('warns about the OS login in general when the IAM name is not known (admin policy, before any call)', () => {
    expect(userSourceMismatch(awsOs, undefined, '')).toEqual({ finding: `{user} comes from the OS login, and ${POLICY}`, fix: FIX });
  });

  it('says nothing when the two names agree, for "user": "store", or for a store other than AWS', () => {
    expect(userSourceMismatch(awsOs, 'alice', 'alice')).toBeUndefined();
    expect(userSourceMismatch({ store: { type: 'aws' }, user: 'store' }, 'alice.smith', 'alice')).toBeUndefined();
    expect(userSourceMismatch({ store: { type: 'vault' }, user: 'os' }, 'alice.smith', 'alice')).toBeUndefined();
    expect(userSourceMismatch({ store: undefined, user: 'os' }, 'alice.smith', 'alice')).toBeUndefined();
  });
});
