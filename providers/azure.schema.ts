// The `store` section of a Azure Key Vault profile, apart from the provider so that the config
// loader validates it without loading the store's SDK chunk (providers/schemas.ts lists them).
import * as v from 'valibot';
import { caBundlePath, type ProviderModule } from './provider.ts';

export const storeSchema = v.strictObject({
  type: v.literal('azure'),
  /** The vault's URL, as the portal shows it: https://NAME.vault.azure.net */
  vaultUrl: v.pipe(
    v.string(),
    v.url('must be a URL such as "https://my-vault.vault.azure.net"'),
    v.startsWith('https://', 'must be an https:// URL (Key Vault only speaks TLS)'),
  ),
  /** The Entra tenant (id or domain) to sign in to; otherwise the one `az login` chose, or the vault's. */
  tenant: v.optional(
    v.pipe(v.string(), v.regex(/^[0-9a-zA-Z.-]+$/, 'must be a tenant id (GUID) or domain such as "contoso.onmicrosoft.com"')),
  ),
  /** "cli" (default): the Azure CLI's login. "default": the DefaultAzureCredential chain. */
  credential: v.optional(v.picklist(['cli', 'default'], 'must be "cli" or "default"')),
  /** Which token claim `{user}` is: the UPN (default, lower-cased) or the object id. */
  userClaim: v.optional(v.picklist(['upn', 'oid'], 'must be "upn" or "oid"')),
  /** A PEM file of extra CAs to trust (a TLS-inspecting proxy, a private endpoint's CA). */
  caFile: v.optional(caBundlePath),
  /** For a vault reached through a custom domain or proxy: skip the SDK's challenge-resource check. */
  disableChallengeResourceVerification: v.optional(v.boolean()),
}) as unknown as ProviderModule['storeSchema'];
