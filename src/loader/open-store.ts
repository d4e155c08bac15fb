// Opens the profile's store: loads that provider's chunk (and with it its SDK), validates the
// store section with the provider's own schema, and creates the provider.
import * as v from 'valibot';
import type { Profile } from '../config/config.ts';
import { describeIssue, storeOf } from '../config/config.ts';
import { ConfigError } from '../kernel/errors.ts';
import { loadProviderModule } from './chunks.ts';
import type { Provider, ProviderContext } from '../../providers/provider.ts';

export async function openProvider(profile: Profile, context: Omit<ProviderContext, 'profile' | 'timeoutMs'>): Promise<Provider> {
  const module = await loadProviderModule(storeOf(profile).type, context.debug);
  const result = v.safeParse(module.storeSchema, profile.store);
  if (!result.success) {
    const issue = describeIssue(result.issues[0], ['store']);
    const where = profile.storeSource ? `${profile.storeSource}: profile "${profile.name}"` : `profile "${profile.name}"`;
    throw new ConfigError(`${where}: ${issue.what}`, issue.fix);
  }
  return module.createProvider(result.output, {
    ...context,
    profile: profile.name,
    timeoutMs: profile.timeoutMs,
    ...(profile.allowInsecureHttp ? { allowInsecureHttp: true } : {}),
  });
}
