// `"user": "os"` names the secret after the laptop login, while the AWS policy from `admin policy`
// lets each developer read only the secret named after their IAM name: where the two differ,
// every developer gets AccessDenied (exit 6).

/** The AWS store with `"user": "os"` whose login differs from the IAM name, said with the pick to make; else undefined. */
export function userSourceMismatch(
  profile: { store?: { type: string } | undefined; user: 'os' | 'store' },
  storeUser: string | undefined,
  osUser: string,
): { finding: string; fix: string } | undefined {
  if (profile.store?.type !== 'aws' || profile.user !== 'os') return undefined;
  if (storeUser === osUser) return undefined;
  const names = storeUser === undefined ? 'the OS login' : `the OS login "${osUser}" while AWS knows you as "${storeUser}"`;
  return {
    finding: `{user} comes from ${names}, and the AWS policy ('admin policy') lets each developer read only the secret named after their AWS name (\${aws:username})`,
    fix: 'set "user": "store" in the profile (the name AWS sees), or keep "user": "os" only where every laptop login equals the IAM user name',
  };
}
