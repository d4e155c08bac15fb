// `admin revoke`: offboarding. The gateway stops accepting the key first (that is what ends
// access), then the store disables the secret (soft, recoverable) or deletes it (--purge).
import { currentKey, secretNameFor, type AdminDeps } from './common.ts';

export async function revokeKey(deps: AdminDeps, request: { user: string; purge: boolean }): Promise<void> {
  const secret = secretNameFor(deps.profile.secret, request.user);
  const current = await currentKey(deps, secret);
  let atGateway = false;
  if (deps.issuer && current) {
    atGateway = await deps.issuer.revoke([current.key]);
    deps.audit.record({ action: 'revoke', user: request.user, secret, version: current.version, outcome: atGateway ? 'key deleted at the gateway' : 'key unknown to the gateway', gateway: deps.issuer.describe() });
  }
  await deps.provider.revoke(secret, { purge: request.purge });
  const outcome = request.purge ? 'deleted for good' : 'disabled (recoverable)';
  deps.audit.record({ action: request.purge ? 'purge' : 'revoke', user: request.user, secret, ...(current ? { version: current.version } : {}), outcome });
  const gateway = !deps.issuer ? '' : atGateway ? `; key deleted at ${deps.issuer.describe()}` : current ? `; ${deps.issuer.describe()} did not know the key` : `; no readable key to delete at ${deps.issuer.describe()}`;
  deps.output.stdout(`${request.user}: secret "${secret}" ${outcome}${gateway}\n`);
}
