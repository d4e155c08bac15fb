// The `store` section of a HashiCorp Vault profile, apart from the provider so that the config
// loader validates it without loading the store's SDK chunk (providers/schemas.ts lists them).
import * as v from 'valibot';
import { caBundlePath, type ProviderModule } from './provider.ts';

const mountPath = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a mount path such as "secret" (no leading or trailing "/")'),
);
const nonEmpty = v.pipe(v.string(), v.minLength(1, 'must not be empty'));
const envName = v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'));
const credentialsIn = (method: string, a: string, b: string) => (input: object) =>
  (input as Record<string, unknown>)['method'] !== method || a in input || b in input;
const userLogin = (method: 'userpass' | 'ldap') =>
  v.strictObject({
    method: v.literal(method),
    mount: v.optional(mountPath),
    username: v.optional(nonEmpty),
    /** For unattended use only; without it `get` uses the token `vault login -method=…` left. */
    passwordFile: v.optional(nonEmpty),
  });

const AuthSchema = v.pipe(
  v.variant('method', [
    /** VAULT_TOKEN or ~/.vault-token, as after `vault login` (the default). */
    v.strictObject({ method: v.literal('token') }),
    /** `get` uses the token `vault login -method=oidc` (or `keybroker login`) left; never a browser. */
    v.strictObject({
      method: v.literal('oidc'),
      mount: v.optional(mountPath),
      role: v.optional(nonEmpty),
      /** The local callback port of the browser flow; Vault's CLI uses 8250. */
      callbackPort: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))),
    }),
    userLogin('userpass'),
    userLogin('ldap'),
    v.strictObject({
      method: v.literal('approle'),
      mount: v.optional(mountPath),
      roleId: nonEmpty,
      secretIdFile: v.optional(nonEmpty),
      secretIdEnv: v.optional(envName),
    }),
    v.strictObject({
      method: v.literal('jwt'),
      mount: v.optional(mountPath),
      role: nonEmpty,
      /** Where the CI runner or platform puts its identity token (a file or a variable). */
      jwtFile: v.optional(nonEmpty),
      jwtEnv: v.optional(envName),
    }),
  ]),
  v.check((input) => credentialsIn('approle', 'secretIdFile', 'secretIdEnv')(input), 'approle needs "secretIdFile" or "secretIdEnv"'),
  v.check((input) => credentialsIn('jwt', 'jwtFile', 'jwtEnv')(input), 'jwt needs "jwtFile" or "jwtEnv"'),
);

export const storeSchema = v.strictObject({
  type: v.literal('vault'),
  /** Otherwise VAULT_ADDR, otherwise the vault CLI's default https://127.0.0.1:8200. */
  address: v.optional(v.pipe(v.string(), v.url('must be a URL such as "https://vault.example.com:8200"'))),
  /** Vault Enterprise / HCP namespace (X-Vault-Namespace); otherwise VAULT_NAMESPACE. */
  namespace: v.optional(nonEmpty),
  /** The KV secrets engine's mount, "secret" by default. */
  mount: v.optional(mountPath),
  kvVersion: v.optional(v.picklist([1, 2], 'must be 1 or 2')),
  auth: v.optional(AuthSchema),
  /** A PEM bundle to verify Vault's TLS certificate (as VAULT_CACERT, which is read otherwise). */
  caCert: v.optional(caBundlePath),
}) as unknown as ProviderModule['storeSchema'];

export type VaultAuth = v.InferOutput<typeof AuthSchema>;
