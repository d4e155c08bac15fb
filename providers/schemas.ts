// Every store type's `store` schema, without any SDK: what the config loader validates a profile's
// `store` section with, so that `config`, `status` and doctor catch a misspelt field before a store call.
import type { StoreType } from './index.ts';
import type { ProviderModule } from './provider.ts';
import { storeSchema as aws } from './aws.schema.ts';
import { storeSchema as azure } from './azure.schema.ts';
import { storeSchema as gcp } from './gcp.schema.ts';
import { storeSchema as vault } from './vault.schema.ts';

export const storeSchemas: Record<StoreType, ProviderModule['storeSchema']> = { aws, azure, gcp, vault };
