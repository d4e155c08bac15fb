// `admin policy`: each store's document is valid in that store's own grammar, and its templated
// name is exactly the secret `get` reads for the same identity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseHcl } from '@cdktf/hcl2json';
import { fetchFromStore } from '../../src/broker/broker.ts';
import { resolveSecretName } from '../../src/secret/name.ts';
import { putKey } from '../../src/admin/put.ts';
import { renderPolicy, policyRequestFor, AWS_USER_VARIABLES, VAULT_USER_TEMPLATE } from '../../src/admin/policy.ts';
import type { Profile } from '../../src/config/config.ts';
import type { Provider, SecretSummary } from '../../providers/provider.ts';
import type { HarnessInstance } from '../providers/contract.ts';
import { keyVaultName } from '../../providers/azure.ts';
import { secretIdFor } from '../../providers/gcp.ts';
import { iamPolicyProblems, iamWildcardMatches, substituteVariables } from '../support/iam-grammar.ts';
import { adminDeps, adminProfile, providerAs, startAwsStore } from './support.ts';
import { awsCli } from './aws-cli.ts';

const TEMPLATE = 'claude-code/keys/{user}';

describe('admin policy: AWS IAM', () => {
  let store: HarnessInstance;
  beforeAll(async () => {
    store = await startAwsStore();
  });
  afterAll(async () => {
    await store?.stop();
  });

  it('prints two documents that are valid IAM JSON in shape', () => {
    const policy = renderPolicy({ type: 'aws', template: TEMPLATE, region: 'us-east-1', accountId: '123456789012', users: [] });
    for (const role of ['developer', 'admin']) {
      const document = JSON.parse(policy.documents[role]!) as unknown;
      expect(iamPolicyProblems(document)).toEqual([]);
    }
    expect(policy.text).toMatch(/^# keybroker: AWS IAM policies/);
    expect(policy.text).toContain('aws iam create-policy');
  });

  it('the grammar checker rejects what IAM would reject', () => {
    expect(
      iamPolicyProblems({ Version: '2012-10-17', Statement: [{ Effect: 'Permit', Action: 'GetSecretValue', Resource: 'claude-code/*' }] }),
    ).toEqual([
      'Statement[0]: Effect must be "Allow" or "Deny"',
      'Statement[0].Action: "GetSecretValue" is not service:Action',
      'Statement[0].Resource: "claude-code/*" is not an ARN or "*"',
    ]);
    expect(
      iamPolicyProblems({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Action: 's3:GetObject',
            Resource: 'arn:aws:s3:::b/${aws:usrname}',
            Condition: { StringEqualz: { 'aws:username': 'x' } },
          },
        ],
      }),
    ).toEqual(['Statement[0].Resource: unknown policy variable ${aws:usrname}', 'Statement[0].Condition: unknown operator "StringEqualz"']);
  });

  it("the developer statement, for the identity's own values, matches exactly the secret get reads, and not a colleague's", async () => {
    const profile = adminProfile(store.storeConfig(store.port));
    const admin = await providerAs(profile, store.adminEnv);
    const developer = await providerAs(profile, store.developerEnv);
    const { deps } = adminDeps(admin, profile);
    await putKey(deps, { user: store.developerUser, key: 'sk-test-policy-alice' });
    await putKey(deps, { user: 'bob', key: 'sk-test-policy-bob' });

    const read = await fetchFromStore({ profile, openProvider: async () => developer, osUser: () => 'unused', now: Date.now });
    expect(read.key).toBe('sk-test-policy-alice');
    const arnOf = async (name: string) =>
      ((await awsCli(store, ['secretsmanager', 'describe-secret', '--secret-id', name])) as { ARN: string }).ARN;
    const [ownArn, bobArn] = [await arnOf(read.secret), await arnOf('claude-code/keys/bob')];

    // What IAM substitutes for the variables when this developer calls: from their own ARN.
    const identity = await developer.whoami();
    const [, , , , account, resource] = identity.principal.split(':');
    const policy = renderPolicy({ type: 'aws', template: TEMPLATE, region: 'us-east-1', accountId: account!, users: [] });
    const statement = (JSON.parse(policy.documents['developer']!) as { Statement: { Resource: string }[] }).Statement[0]!;
    expect(statement.Resource).toContain(AWS_USER_VARIABLES[0]);
    const forAlice = substituteVariables(statement.Resource, { 'aws:username': resource!.split('/').at(-1)! });
    expect(iamWildcardMatches(forAlice, ownArn)).toBe(true);
    expect(iamWildcardMatches(forAlice, bobArn)).toBe(false);
    // A role session tagged with the SSO user name gets the same secret through the tag statement.
    const tagged = (JSON.parse(policy.documents['developer']!) as { Statement: { Resource: string }[] }).Statement[1]!;
    expect(iamWildcardMatches(substituteVariables(tagged.Resource, { 'aws:PrincipalTag/keybroker-user': 'alice' }), ownArn)).toBe(true);
  });
});

describe('admin policy: the other stores', () => {
  it('Vault: the policy parses as HCL, and its templated path is the KV v2 path of the secret get reads', async () => {
    const policy = renderPolicy({ type: 'vault', template: TEMPLATE, vaultMount: 'kv', users: [] });
    const developer = (await parseHcl('developer.hcl', policy.documents['developer']!)) as {
      path: Record<string, { capabilities: string[] }[]>;
    };
    const admin = (await parseHcl('admin.hcl', policy.documents['admin']!)) as { path: Record<string, { capabilities: string[] }[]> };
    await parseHcl('all.hcl', policy.text);
    const paths = Object.keys(developer.path);
    expect(paths).toEqual([`kv/data/claude-code/keys/${VAULT_USER_TEMPLATE}`, `kv/metadata/claude-code/keys/${VAULT_USER_TEMPLATE}`]);
    expect(developer.path[paths[0]!]![0]!.capabilities).toEqual(['read']);
    // Vault fills {{identity.entity.name}} with the entity's name; `get` fills {user} with the same name.
    const secret = resolveSecretName(TEMPLATE, 'alice', 'the store identity');
    expect(paths[0]!.replace(VAULT_USER_TEMPLATE, 'alice')).toBe(`kv/data/${secret}`);
    expect(Object.keys(admin.path)).toContain('kv/data/claude-code/keys/*');
    expect(
      Object.values(developer.path)
        .flat()
        .flatMap((rule) => rule.capabilities),
    ).not.toContain('update');
  });

  it('GCP: one conditional secretAccessor binding per developer, conditioned on their own secret only, as the provider names it', () => {
    const policy = renderPolicy({
      type: 'gcp',
      template: TEMPLATE,
      project: 'acme-ml',
      users: ['alice@example.com', 'bob@example.com'],
      storeNameOf: secretIdFor,
    });
    const id = secretIdFor(resolveSecretName(TEMPLATE, 'alice@example.com', 'the store identity'));
    expect(policy.documents['developer']).toContain(`--member='user:alice@example.com' --role='roles/secretmanager.secretAccessor'`);
    expect(policy.documents['condition']).toBe(
      `resource.name.endsWith("/secrets/${id}") || resource.name.extract("/secrets/{id}/versions/") == "${id}"`,
    );
    expect(policy.documents['developer']!.split('\n\n')).toHaveLength(2);
    expect(policy.text).toMatch(/^# keybroker: GCP IAM bindings/);
  });

  it("GCP: the admins' clause matches the ids the provider writes under the template", () => {
    const policy = renderPolicy({
      type: 'gcp',
      template: TEMPLATE,
      project: 'acme-ml',
      users: ['alice@example.com'],
      storeNameOf: secretIdFor,
    });
    const written = secretIdFor(resolveSecretName(TEMPLATE, 'alice@example.com', 'the store identity'));
    const prefix = /startsWith\("([^"]*)"\)/.exec(policy.documents['admin']!)![1]!;
    expect(written.startsWith(prefix)).toBe(true);
    expect(prefix).toBe(secretIdFor('claude-code/keys/'));
  });

  it('Azure: a Key Vault Secrets User assignment per developer scoped to their own secret, as the provider names it', () => {
    const policy = renderPolicy({ type: 'azure', template: TEMPLATE, users: ['alice@contoso.com'], storeNameOf: keyVaultName });
    expect(policy.documents['developer']).toContain(`--role 'Key Vault Secrets User' --assignee 'alice@contoso.com'`);
    const scoped = keyVaultName(resolveSecretName(TEMPLATE, 'alice@contoso.com', 'the store identity'));
    expect(policy.documents['developer']).toMatch(new RegExp(`--scope '.*/vaults/VAULT_NAME/secrets/${scoped}'$`));
    expect(policy.documents['admin']).toContain('Key Vault Secrets Officer');
  });
});

describe('what the policy is rendered for', () => {
  const profileFor = (store: Profile['store']): Profile => ({
    name: 'p',
    store,
    secret: TEMPLATE,
    field: 'api_key',
    user: 'store',
    timeoutMs: 1_000,
    cache: { backend: 'none', refreshAfterMs: 60_000, fallback: 'none' },
  });
  const listing = (summaries: SecretSummary[]): Provider => ({
    describe: () => 'a listing',
    loginCommand: () => 'none',
    whoami: async () => ({ user: 'admin', principal: 'arn:aws:iam::210987654321:user/admin' }),
    readCurrent: async () => {
      throw new Error('not read');
    },
    write: async () => ({ version: '1', created: true }),
    revoke: async () => {},
    async *list() {
      yield* summaries;
    },
  });

  it("GCP and Azure bind the developers the store lists (enabled ones), through the provider's names", async () => {
    const provider = listing([
      { name: resolveSecretName(TEMPLATE, 'alice@example.com', 't'), enabled: true, labels: {} },
      { name: resolveSecretName(TEMPLATE, 'bob@example.com', 't'), enabled: false, labels: {} },
    ]);
    const request = await policyRequestFor('gcp', [], {
      profile: profileFor({ type: 'gcp', project: 'acme-ml' }),
      env: {},
      storageName: secretIdFor,
      openProvider: async () => provider,
    });
    expect(request.users).toEqual(['alice@example.com']);
    expect(request.project).toBe('acme-ml');
    expect(renderPolicy(request).documents['developer']).toContain(secretIdFor(resolveSecretName(TEMPLATE, 'alice@example.com', 't')));
  });

  it("AWS takes the account id from the admin's own identity", async () => {
    const request = await policyRequestFor('aws', [], {
      profile: profileFor({ type: 'aws', region: 'eu-west-1' }),
      env: {},
      storageName: undefined,
      openProvider: async () => listing([]),
    });
    expect(request).toMatchObject({ region: 'eu-west-1', accountId: '210987654321' });
  });

  it("a policy for another store type than the profile's does not open the profile's store", async () => {
    const request = await policyRequestFor('azure', ['carol@contoso.com'], {
      profile: profileFor({ type: 'aws', region: 'eu-west-1' }),
      env: {},
      storageName: keyVaultName,
      openProvider: async () => {
        throw new Error('must not be opened');
      },
    });
    expect(renderPolicy(request).documents['developer']).toContain(keyVaultName(resolveSecretName(TEMPLATE, 'carol@contoso.com', 't')));
  });
});
