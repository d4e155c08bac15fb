// `admin policy`: a least-privilege access policy per store, so that each developer can read only
// their own key and admins can write. The store, not keybroker, is the security boundary.
import type { StoreType } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import type { Profile } from '../config/config.ts';
import { templatePrefix } from './common.ts';
import { allUsers } from './rotate.ts';

export interface PolicyRequest {
  type: StoreType;
  /** The profile's secret template, e.g. "claude-code/keys/{user}". */
  template: string;
  /** AWS: region and account (from the admin's own identity when known). */
  region?: string;
  accountId?: string;
  /** Vault: the KV v2 mount. GCP: the project. Azure: the vault's resource id or name. */
  vaultMount?: string;
  /** Vault: KV engine version (2 by default): v1 has no data/ and metadata/ paths. */
  vaultKvVersion?: 1 | 2;
  project?: string;
  azureVaultScope?: string;
  /** GCP and Azure bind per developer: the users to bind (their store identities). */
  users: string[];
  /** The store's own name for a logical secret name, as its provider maps it (ProviderModule.storageName); absent: the name as is. */
  storeNameOf?: (logical: string) => string;
}

export interface Policy {
  /** The whole output: documents with a comment block on how to apply them. */
  text: string;
  /** Each document alone (JSON, HCL, CEL or shell), by role: "developer", "admin". */
  documents: Record<string, string>;
}

export interface PolicyContext {
  profile: Profile;
  env: NodeJS.ProcessEnv;
  /** The name mapping of the provider of the policy's store type (ProviderModule.storageName). */
  storageName: ((logical: string) => string) | undefined;
  /** The profile's own store; asked only when the policy is for that store's type. */
  openProvider(): Promise<Provider>;
}

/**
 * What to render for `type`: the profile's template, and, when the profile uses that store, its
 * region / mount / project, the admin's AWS account id and (GCP, Azure) the developers it lists.
 * The provider's name mapping applies also when the profile uses another store: the policy must
 * name the secrets that provider writes.
 */
export async function policyRequestFor(type: StoreType, users: string[], context: PolicyContext): Promise<PolicyRequest> {
  const { profile } = context;
  const request: PolicyRequest = { type, template: profile.secret, users };
  if (context.storageName) request.storeNameOf = context.storageName;
  const store = profile.store;
  if (!store || type !== store.type) return request;
  const text = (field: string) => (typeof store[field] === 'string' ? (store[field] as string) : undefined);
  const region = text('region') ?? (type === 'aws' ? context.env['AWS_REGION'] : undefined);
  if (region) request.region = region;
  if (text('mount')) request.vaultMount = text('mount')!;
  if (store['kvVersion'] === 1) request.vaultKvVersion = 1;
  if (text('project')) request.project = text('project')!;
  const provider = await context.openProvider();
  if (type === 'aws') {
    // The account id from the admin's own ARN; without credentials the policy says "*".
    const principal = await provider.whoami().then(
      (identity) => identity.principal,
      () => '',
    );
    const account = principal.split(':')[4];
    if (account && /^\d{12}$/.test(account)) request.accountId = account;
  }
  if ((type === 'gcp' || type === 'azure') && users.length === 0) {
    request.users = await allUsers({ provider, profile }).catch(() => []);
  }
  return request;
}

export function renderPolicy(request: PolicyRequest): Policy {
  switch (request.type) {
    case 'aws':
      return awsPolicy(request);
    case 'vault':
      return vaultPolicy(request);
    case 'gcp':
      return gcpPolicy(request);
    case 'azure':
      return azurePolicy(request);
  }
}

/** The store's name for a logical secret name: the provider's mapping, else the name as is. */
function storeName(request: PolicyRequest, logical: string): string {
  return request.storeNameOf ? request.storeNameOf(logical) : logical;
}

// ---- AWS IAM ----------------------------------------------------------------------------------

/** The `{user}` stand-ins: an IAM user's name, or a principal tag set from the SSO user name. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: IAM policy variables, which AWS expands, not a template
export const AWS_USER_VARIABLES = ['${aws:username}', '${aws:PrincipalTag/keybroker-user}'] as const;

function awsPolicy(request: PolicyRequest): Policy {
  const arn = (name: string) => `arn:aws:secretsmanager:${request.region ?? '*'}:${request.accountId ?? '*'}:secret:${name}`;
  // Secrets Manager appends "-" and six random characters to every secret's ARN.
  const own = (variable: string) => arn(`${request.template.replaceAll('{user}', variable)}-??????`);
  const read = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];
  const developer = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'ReadOwnKeyAsIamUser', Effect: 'Allow', Action: read, Resource: own(AWS_USER_VARIABLES[0]) },
      {
        Sid: 'ReadOwnKeyAsTaggedSession',
        Effect: 'Allow',
        Action: read,
        Resource: own(AWS_USER_VARIABLES[1]),
        Condition: { Null: { 'aws:PrincipalTag/keybroker-user': 'false' } },
      },
    ],
  };
  const admin = {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ManageDeveloperKeys',
        Effect: 'Allow',
        Action: [
          'secretsmanager:CreateSecret',
          'secretsmanager:PutSecretValue',
          'secretsmanager:GetSecretValue',
          'secretsmanager:DescribeSecret',
          'secretsmanager:TagResource',
          'secretsmanager:DeleteSecret',
          'secretsmanager:RestoreSecret',
        ],
        Resource: arn(`${templatePrefix(request.template)}*`),
      },
      // ListSecrets has no resource-level permission.
      { Sid: 'ListDeveloperKeys', Effect: 'Allow', Action: ['secretsmanager:ListSecrets'], Resource: '*' },
    ],
  };
  const documents = { developer: JSON.stringify(developer, null, 2), admin: JSON.stringify(admin, null, 2) };
  const text = `# keybroker: AWS IAM policies for secrets "${request.template}"
#
# developer.json lets each developer read only the secret whose name carries their own identity:
#   - IAM users: \${aws:username} is the IAM user name, which is what "user": "store" resolves to.
#   - SSO / assumed roles: "user": "store" resolves to the role session name (the SSO user name).
#     IAM has no policy variable for it alone, so map it to the session tag "keybroker-user"
#     (IAM Identity Center > Settings > Attributes for access control: keybroker-user = \${path:userName}).
# Apply:
#   aws iam create-policy --policy-name keybroker-developer-read --policy-document file://developer.json
#   aws iam attach-group-policy --group-name developers --policy-arn arn:aws:iam::ACCOUNT:policy/keybroker-developer-read
#   (for SSO: add developer.json as the inline policy of the developers' permission set)
#   aws iam create-policy --policy-name keybroker-admin --policy-document file://admin.json
# Check: 'keybroker admin policy --store aws --only developer > developer.json' prints one document alone.
${request.accountId ? '' : '# The account is "*": run this with the admin\'s credentials to fill in the account id.\n'}
# ---- developer.json
${documents.developer}
# ---- admin.json
${documents.admin}
`;
  return { text, documents };
}

// ---- HashiCorp Vault ---------------------------------------------------------------------------

export const VAULT_USER_TEMPLATE = '{{identity.entity.name}}';

function vaultPolicy(request: PolicyRequest): Policy {
  const mount = (request.vaultMount ?? 'secret').replace(/^\/+|\/+$/g, '');
  const own = request.template.replaceAll('{user}', VAULT_USER_TEMPLATE);
  const prefix = templatePrefix(request.template);
  if (request.vaultKvVersion === 1) return vaultKv1Policy(request, mount, own, prefix);
  const developer = `# Each developer reads only their own key: the entity's name fills the template.
path "${mount}/data/${own}" {
  capabilities = ["read"]
}

path "${mount}/metadata/${own}" {
  capabilities = ["read"]
}
`;
  const admin = `# Admins write new versions, list, disable (delete) and purge (destroy, metadata delete).
path "${mount}/data/${prefix}*" {
  capabilities = ["create", "update", "read"]
}

path "${mount}/metadata/${prefix}*" {
  capabilities = ["list", "read", "update", "delete"]
}

path "${mount}/delete/${prefix}*" {
  capabilities = ["update"]
}

path "${mount}/undelete/${prefix}*" {
  capabilities = ["update"]
}

path "${mount}/destroy/${prefix}*" {
  capabilities = ["update"]
}
`;
  const text = `# keybroker: Vault policies (KV v2 at "${mount}/") for secrets "${request.template}"
#
# {{identity.entity.name}} is the name of the developer's identity entity. Name each entity
# after the developer and set "user": "store": keybroker then resolves {user} to that same
# name (with only a generated entity_… name it falls back to the login's user name, which this
# template would not match: use {{identity.entity.aliases.<auth accessor>.name}} instead).
# Apply:
#   keybroker admin policy --store vault --only developer | vault policy write keybroker-developer -
#   keybroker admin policy --store vault --only admin | vault policy write keybroker-admin -
#   then add "keybroker-developer" to the developers' auth role or group policies.

${developer}
${admin}`;
  return { text, documents: { developer, admin } };
}

function vaultKv1Policy(request: PolicyRequest, mount: string, own: string, prefix: string): Policy {
  const developer = `# Each developer reads only their own key: the entity's name fills the template.
path "${mount}/${own}" {
  capabilities = ["read"]
}
`;
  const admin = `# Admins write, list and delete (KV v1 keeps no versions: a revoke there is a purge).
path "${mount}/${prefix}*" {
  capabilities = ["create", "update", "read", "list", "delete"]
}
`;
  const text = `# keybroker: Vault policies (KV v1 at "${mount}/") for secrets "${request.template}"
#
# {{identity.entity.name}} is the name of the developer's identity entity: name each entity
# after the developer and set "user": "store" so keybroker resolves {user} to the same name.
# Apply:
#   keybroker admin policy --store vault --only developer | vault policy write keybroker-developer -
#   keybroker admin policy --store vault --only admin | vault policy write keybroker-admin -

${developer}
${admin}`;
  return { text, documents: { developer, admin } };
}

// ---- Google Cloud Secret Manager ----------------------------------------------------------------

function gcpPolicy(request: PolicyRequest): Policy {
  const project = request.project ?? 'PROJECT_ID';
  const users = request.users.length ? request.users : ['{user}'];
  const condition = (user: string) => {
    const id = storeName(request, request.template.replaceAll('{user}', user));
    // resource.name carries the project NUMBER; endsWith keeps the condition independent of it.
    return `resource.name.endsWith("/secrets/${id}") || resource.name.extract("/secrets/{id}/versions/") == "${id}"`;
  };
  const developer = users
    .map((user) =>
      [
        `gcloud projects add-iam-policy-binding ${project} \\`,
        `  --member='user:${user}' --role='roles/secretmanager.secretAccessor' \\`,
        `  --condition='title=keybroker-${storeName(request, user).slice(0, 60)},expression=${condition(user)}'`,
      ].join('\n'),
    )
    .join('\n\n');
  // The admins' clause must match the ids the provider writes, so the prefix goes through the same mapping.
  const prefix = templatePrefix(request.template);
  const prefixId = prefix ? storeName(request, prefix) : '';
  const admin = [
    `gcloud projects add-iam-policy-binding ${project} \\`,
    `  --member='group:ADMIN_GROUP' --role='roles/secretmanager.admin' \\`,
    `  --condition='title=keybroker-admin,expression=resource.name.extract("/secrets/{id}/").startsWith("${prefixId}") || resource.name.extract("/secrets/{id}").startsWith("${prefixId}") || resource.type == "cloudresourcemanager.googleapis.com/Project"'`,
  ].join('\n');
  const text = `# keybroker: GCP IAM bindings for Secret Manager secrets "${request.template}" (as the gcp provider names them)
#
# IAM conditions cannot name the caller, so each developer gets one conditional binding of
# roles/secretmanager.secretAccessor limited to their own secret (their e-mail is {user} with "user": "store").
${request.users.length ? '' : '# No developers given: pass --user EMAIL (repeatable), or run it where the store lists them.\n'}# Creating a secret is checked on the project, hence the admins' project-type clause.
# Apply: run the commands below as a project IAM admin (replace ADMIN_GROUP with your admins' group).

# ---- developers
${developer}

# ---- admins
${admin}
`;
  return { text, documents: { developer, admin, condition: condition(users[0]!) } };
}

// ---- Azure Key Vault (RBAC) ---------------------------------------------------------------------

function azurePolicy(request: PolicyRequest): Policy {
  const vault =
    request.azureVaultScope ??
    '/subscriptions/SUBSCRIPTION_ID/resourceGroups/RESOURCE_GROUP/providers/Microsoft.KeyVault/vaults/VAULT_NAME';
  const users = request.users.length ? request.users : ['{user}'];
  const developer = users
    .map((user) =>
      [
        `az role assignment create --role 'Key Vault Secrets User' --assignee '${user}' \\`,
        `  --scope '${vault}/secrets/${storeName(request, request.template.replaceAll('{user}', user))}'`,
      ].join('\n'),
    )
    .join('\n\n');
  const admin = `az role assignment create --role 'Key Vault Secrets Officer' --assignee-object-id ADMIN_GROUP_OBJECT_ID --assignee-principal-type Group \\\n  --scope '${vault}'`;
  const text = `# keybroker: Azure RBAC role assignments for Key Vault secrets "${request.template}" (as the azure provider names them)
#
# The vault must use the Azure RBAC permission model (not access policies). Each developer gets
# "Key Vault Secrets User" scoped to their own secret only; admins "Key Vault Secrets Officer" on the vault.
${request.users.length ? '' : '# No developers given: pass --user UPN (repeatable), or run it where the store lists them.\n'}# Apply: run the commands below as an Owner or User Access Administrator of the vault.

# ---- developers
${developer}

# ---- admins
${admin}
`;
  return { text, documents: { developer, admin } };
}
