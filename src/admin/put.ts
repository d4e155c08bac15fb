// `admin put`: one developer's key into the store, as a new secret or a new version.
import { writeKey, type AdminDeps, type WriteOutcome } from './common.ts';

export async function putKey(deps: AdminDeps, request: { user: string; key: string; expiresAt?: Date }): Promise<WriteOutcome> {
  const result = await writeKey(deps, request, 'put');
  deps.output.stdout(`${describeOutcome(result)}\n`);
  return result;
}

function describeOutcome(result: WriteOutcome): string {
  switch (result.outcome) {
    case 'created':
      return `${result.user}: created secret "${result.secret}" (version ${result.version})`;
    case 'updated':
      return `${result.user}: new version ${result.version} of "${result.secret}"`;
    case 'unchanged':
      return `${result.user}: unchanged, the same key is already version ${result.version} of "${result.secret}"`;
  }
}
