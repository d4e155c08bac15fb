// AWS Secrets Manager, as the developer the AWS default credential chain says they are
// (SSO or named profile, environment, web identity, instance role).
import { randomUUID } from 'node:crypto';
import {
  SecretsManagerClient,
  GetSecretValueCommand,
  PutSecretValueCommand,
  CreateSecretCommand,
  TagResourceCommand,
  ListSecretsCommand,
  DeleteSecretCommand,
  RestoreSecretCommand,
  DescribeSecretCommand,
  type SecretListEntry,
  type Tag,
} from '@aws-sdk/client-secrets-manager';
import { STSClient, GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import {
  AccessDenied,
  ConfigError,
  KeybrokerError,
  NotAuthenticated,
  SecretNotFound,
  StoreRefused,
  StoreUnreachable,
} from '../src/kernel/errors.ts';
import { classifyStoreError, throttlingOnly, withStoreRetry, type RetryClass } from '../src/kernel/retry.ts';
import {
  NETWORK_ERROR_CODES,
  storeThrottling,
  storeTimedOut,
  type FailedCall,
  type Provider,
  type ProviderContext,
  type ProviderModule,
  type SecretSummary,
  type SecretValue,
  type StoreConfig,
  type StoreIdentity,
  type WriteOptions,
  type WriteResult,
} from './provider.ts';
import { storeSchema } from './aws.schema.ts';
import { checkLoopbackOwner } from '../src/kernel/loopback-owner.ts';
import type { FinalizeRequestMiddleware } from '@smithy/types';

/** Re-exported: a provider module is its schema and its factory (ProviderModule). */
export { storeSchema };

type AwsStore = { type: 'aws'; region?: string; endpoint?: string; profile?: string };

export function createProvider(config: StoreConfig, context: ProviderContext): Provider {
  const session = openSession(config as AwsStore, context);
  return {
    describe: () => session.where,
    loginCommand: () => (session.profileName ? `aws sso login --profile ${session.profileName}` : 'aws sso login'),
    whoami: () => whoami(session),
    readCurrent: (name) => readCurrent(session, name),
    write: (name, value, options) => writeSecret(session, name, value, options),
    list: (prefix) => listSecrets(session, prefix),
    revoke: (name, { purge }) => revokeSecret(session, name, purge),
  };
}

/** What every call of one provider shares: the clients, the names for messages, the bounded call. */
interface AwsSession {
  where: string;
  profileName: string | undefined;
  secrets: SecretsManagerClient;
  sts: STSClient;
  call<T>(
    what: string,
    secret: string | undefined,
    send: (signal: AbortSignal) => Promise<T>,
    classify?: (error: unknown) => RetryClass,
  ): Promise<T>;
}

function openSession(store: AwsStore, context: ProviderContext): AwsSession {
  const region = store.region ?? context.env['AWS_REGION'] ?? context.env['AWS_DEFAULT_REGION'];
  const profileName = store.profile ?? context.env['AWS_PROFILE'];
  const common = {
    ...(region ? { region } : {}),
    ...(store.endpoint ? { endpoint: store.endpoint } : {}),
    ...(store.profile ? { profile: store.profile } : {}),
    // One retry policy for all stores (src/kernel/retry.ts) bounds attempts and waits together.
    maxAttempts: 1,
  };
  const secrets = new SecretsManagerClient(common);
  const sts = new STSClient(common);
  secrets.middlewareStack.add(loopbackOwnerCheck(context.profile), { step: 'finalizeRequest', name: 'keybrokerLoopbackOwner' });
  sts.middlewareStack.add(loopbackOwnerCheck(context.profile), { step: 'finalizeRequest', name: 'keybrokerLoopbackOwner' });
  const where = `AWS Secrets Manager (${region ?? 'no region'}${profileName ? `, profile ${profileName}` : ''}${store.endpoint ? `, ${store.endpoint}` : ''})`;
  const loginFix = profileName
    ? `run 'aws sso login --profile ${profileName}' (or refresh the profile's credentials)`
    : `run 'aws sso login' or 'aws configure', or set AWS_PROFILE`;
  return {
    where,
    profileName,
    secrets,
    sts,
    async call(what, secret, send, classify) {
      if (!region) throw new ConfigError(`no AWS region for ${where}`, 'set "region" in the profile\'s store, or AWS_REGION');
      try {
        return await withStoreRetry(send, {
          budgetMs: context.timeoutMs,
          ...(classify ? { classify } : {}),
          ...(context.paceCall ? { pace: context.paceCall } : {}),
          onRetry: ({ attempt, waitMs, reason }) => {
            if (reason === 'throttled') context.onThrottle?.(waitMs);
            context.debug(`${what}: attempt ${attempt} ${reason}; retrying in ${waitMs} ms`);
          },
        });
      } catch (error) {
        throw mapAwsError(error, { what, secret, where, loginFix, timeoutMs: context.timeoutMs });
      }
    },
  };
}

async function whoami({ call, sts }: AwsSession): Promise<StoreIdentity> {
  const identity = await call('GetCallerIdentity', undefined, (abortSignal) => sts.send(new GetCallerIdentityCommand({}), { abortSignal }));
  const arn = identity.Arn ?? '';
  return { user: userFromArn(arn), principal: arn };
}

async function readCurrent({ call, secrets, where }: AwsSession, name: string): Promise<SecretValue> {
  const result = await call('GetSecretValue', name, (abortSignal) =>
    // VersionStage explicitly: emulators may otherwise return an old version after a stage move.
    secrets.send(new GetSecretValueCommand({ SecretId: name, VersionStage: 'AWSCURRENT' }), { abortSignal }),
  );
  if (result.SecretString === undefined) {
    throw new SecretNotFound(`secret "${name}" in ${where} holds binary data, not a key`, 'store the key as a string (SecretString)');
  }
  const value = { value: result.SecretString, version: result.VersionId ?? 'unknown' };
  return result.CreatedDate ? { ...value, createdAt: result.CreatedDate } : value;
}

/** CreateSecret; with `known: {exists: false}` a name that turns out taken answers EXISTS instead of failing. */
function createSecret({ call, secrets }: AwsSession, name: string, value: string, options: WriteOptions, tags: Tag[]) {
  return call('CreateSecret', name, (abortSignal) =>
    secrets
      .send(
        new CreateSecretCommand({
          Name: name,
          SecretString: value,
          Tags: tags,
          ClientRequestToken: options.requestToken ?? randomUUID(),
          ...(options.description ? { Description: options.description } : {}),
        }),
        { abortSignal },
      )
      // Only with `known: {exists: false}`: the secret is there after all (created since, or scheduled for deletion).
      .catch((error: unknown): typeof EXISTS => {
        if (options.known?.exists === false && existsAlready(error)) return EXISTS;
        throw error;
      }),
  );
}

/** Whether the secret exists (and is scheduled for deletion), trusting a read that just told. */
async function existingSecret(
  { call, secrets }: AwsSession,
  name: string,
  knownToExist: boolean,
): Promise<{ DeletedDate?: Date } | undefined> {
  // A read just returned its value: it exists and is not scheduled for deletion.
  if (knownToExist) return {};
  try {
    return await call('DescribeSecret', name, (abortSignal) =>
      secrets.send(new DescribeSecretCommand({ SecretId: name }), { abortSignal }),
    );
  } catch (error) {
    if (!(error instanceof SecretNotFound)) throw error;
    return undefined;
  }
}

async function writeSecret(session: AwsSession, name: string, value: string, options: WriteOptions): Promise<WriteResult> {
  const { call, secrets, where } = session;
  const tags: Tag[] = Object.entries(options.labels).map(([Key, Value]) => ({ Key, Value }));
  if (options.known?.exists === false) {
    // A read just said "not found": create it, without a DescribeSecret first.
    const created = await createSecret(session, name, value, options, tags);
    if (created !== EXISTS) return { version: created.VersionId ?? 'unknown', created: true };
  }
  const existing = await existingSecret(session, name, options.known?.exists === true);
  if (!existing) {
    const created = await createSecret(session, name, value, options, tags);
    if (created === EXISTS)
      throw new StoreUnreachable(
        `${where} answered CreateSecret for "${name}" with "already exists" right after DescribeSecret said it does not`,
        'run the same command again',
      );
    return { version: created.VersionId ?? 'unknown', created: true };
  }
  // A soft-revoked secret (scheduled for deletion) is restored first: re-provisioning a developer.
  if (existing.DeletedDate)
    await call('RestoreSecret', name, (abortSignal) => secrets.send(new RestoreSecretCommand({ SecretId: name }), { abortSignal }));
  // One idempotency token for every attempt (the SDK would mint a new one per send): a retry never adds a second version.
  const ClientRequestToken = options.requestToken ?? randomUUID();
  const put = await call('PutSecretValue', name, (abortSignal) =>
    secrets.send(new PutSecretValueCommand({ SecretId: name, SecretString: value, ClientRequestToken }), { abortSignal }),
  );
  if (tags.length)
    await call('TagResource', name, (abortSignal) => secrets.send(new TagResourceCommand({ SecretId: name, Tags: tags }), { abortSignal }));
  return { version: put.VersionId ?? 'unknown', created: false };
}

async function* listSecrets({ call, secrets }: AwsSession, prefix: string): AsyncGenerator<SecretSummary> {
  let NextToken: string | undefined;
  do {
    const page = await call('ListSecrets', undefined, (abortSignal) =>
      secrets.send(
        new ListSecretsCommand({
          Filters: prefix ? [{ Key: 'name', Values: [prefix] }] : undefined,
          NextToken,
          MaxResults: 100,
          IncludePlannedDeletion: true,
        }),
        { abortSignal },
      ),
    );
    for (const entry of page.SecretList ?? []) {
      if (entry.Name?.startsWith(prefix)) yield summaryOf(entry as SecretListEntry & { Name: string });
    }
    NextToken = page.NextToken;
  } while (NextToken);
}

/** One ListSecrets entry as an admin lists it: the AWSCURRENT version, tags as labels, never the value. */
export function summaryOf(entry: SecretListEntry & { Name: string }): SecretSummary {
  const current = Object.entries(entry.SecretVersionsToStages ?? {}).find(([, stages]) => stages.includes('AWSCURRENT'));
  const summary: SecretSummary = {
    name: entry.Name,
    enabled: entry.DeletedDate === undefined,
    labels: Object.fromEntries((entry.Tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? ''])),
  };
  if (current) summary.version = current[0];
  if (entry.CreatedDate) summary.createdAt = entry.CreatedDate;
  if (entry.LastChangedDate) summary.updatedAt = entry.LastChangedDate;
  return summary;
}

async function revokeSecret({ call, secrets }: AwsSession, name: string, purge: boolean): Promise<void> {
  await call(
    'DeleteSecret',
    name,
    (abortSignal) =>
      secrets.send(
        new DeleteSecretCommand(purge ? { SecretId: name, ForceDeleteWithoutRecovery: true } : { SecretId: name, RecoveryWindowInDays: 7 }),
        { abortSignal },
      ),
    // A repeated delete after one that went through answers "marked for deletion": only a throttled one is sent again.
    throttlingOnly,
  );
}

/** CreateSecret's answer when the name is taken: by a live secret, or by one scheduled for deletion. */
const EXISTS: unique symbol = Symbol('exists');

export function existsAlready(error: unknown): boolean {
  const { name, message } = error as { name?: string; message?: string };
  return (
    name === 'ResourceExistsException' ||
    (name === 'InvalidRequestException' && /scheduled for deletion|marked for deletion|deleted/i.test(message ?? ''))
  );
}

/** `{user}` from a caller ARN: an IAM user's name, a role session's name, a federated user's name. */
export function userFromArn(arn: string): string {
  const resource = arn.split(':').slice(5).join(':');
  const parts = resource.split('/');
  if (parts[0] === 'assumed-role') return parts[2] ?? '';
  if (resource === 'root') return 'root';
  return parts.at(-1) ?? '';
}

/**
 * SigV4 hides the credentials, but a signed request is still the developer's (and the answer is
 * their key): a plain-HTTP loopback endpoint of another local user gets none, whatever set it.
 */
function loopbackOwnerCheck<Input extends object, Output extends object>(profile: string): FinalizeRequestMiddleware<Input, Output> {
  return (next) => async (args) => {
    const request = args.request as { protocol?: string; hostname?: string; port?: number };
    if (request.protocol === 'http:' && request.hostname) {
      const host = request.hostname.includes(':') ? `[${request.hostname}]` : request.hostname;
      checkLoopbackOwner(`http://${host}${request.port ? `:${request.port}` : ''}`, {
        what: `the AWS endpoint (profile "${profile}")`,
        carries: 'a signed request',
      });
    }
    return next(args);
  };
}

export function mapAwsError(error: unknown, context: FailedCall): KeybrokerError {
  if (error instanceof KeybrokerError) return error;
  const err = error as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const name = err.name ?? '';
  const status = err.$metadata?.httpStatusCode;
  // An unparseable error body (SyntaxError) says nothing useful; the HTTP status does.
  const message = name === 'SyntaxError' && status ? `HTTP ${status}` : (err.message ?? String(error)).split('\n')[0]!;
  const subject = context.secret ? `secret "${context.secret}" in ${context.where}` : context.where;

  // The SDK's credential and config chain calls os.homedir() before any request is sent.
  if ((error as { syscall?: string }).syscall === 'uv_os_homedir' || /\buv_os_homedir\b/.test(message)) {
    return new ConfigError(
      `the AWS SDK cannot find your home folder for ${context.where}: HOME is not set and this user (uid ${process.getuid?.() ?? '?'}) has no entry in the user database; no request was sent`,
      'set HOME to your home folder (the AWS SDK reads ~/.aws there)',
    );
  }
  if (name === 'ResourceNotFoundException') {
    return new SecretNotFound(
      `${subject} does not exist`,
      'ask your admin to provision your key (keybroker admin put), or check "secret" in the profile',
    );
  }
  if (name === 'InvalidRequestException' && /marked for deletion|marked deleted|deleted/i.test(message)) {
    return new SecretNotFound(`${subject} is scheduled for deletion (revoked)`, 'ask your admin for a new key');
  }
  // A 403 whose body the SDK could not parse (emulators answer the JSON protocol in XML) is a denial too.
  if (
    name === 'AccessDeniedException' ||
    name === 'AccessDenied' ||
    name === 'DecryptionFailure' ||
    (status === 403 && !/signature|token/i.test(name))
  ) {
    return new AccessDenied(
      `access denied to ${subject} (${message})`,
      'ask your admin to grant your identity read access (keybroker admin policy)',
    );
  }
  if (/\bsso\b/i.test(message) && /expired|refresh|login/i.test(message)) {
    return new NotAuthenticated(
      `not logged in to AWS: no valid SSO session (expired, or never logged in on this machine)`,
      context.loginFix,
    );
  }
  if (
    name === 'CredentialsProviderError' ||
    name === 'ExpiredTokenException' ||
    name === 'ExpiredToken' ||
    name === 'UnrecognizedClientException' ||
    name === 'InvalidClientTokenId' ||
    name === 'InvalidSignatureException' ||
    name === 'SignatureDoesNotMatch' ||
    name === 'IncompleteSignature' ||
    name === 'TokenRefreshRequired'
  ) {
    return new NotAuthenticated(`not logged in to AWS for ${context.where} (${message})`, context.loginFix);
  }
  // The SDK names a reset connection "TimeoutError" (code ECONNRESET): the code is the truth.
  if (NETWORK_ERROR_CODES.includes(err.code ?? name)) {
    return new StoreUnreachable(`cannot reach ${context.where} (${err.code ?? name})`, 'check your network or VPN and the store endpoint');
  }
  if (name === 'TimeoutError' || name === 'AbortError' || /aborted|timed? ?out/i.test(message)) {
    return storeTimedOut(context.where, context.what, context.timeoutMs);
  }
  if (classifyStoreError(error) === 'throttled') {
    return storeThrottling(context.where, `${name || `HTTP ${status}`}: ${message}`);
  }
  if (name === 'InternalServiceError' || (status !== undefined && status >= 500)) {
    return new StoreUnreachable(`${context.where} is unavailable (${name || status}: ${message})`, 'try again in a minute');
  }
  if (name === 'ConfigError') return new ConfigError(message, 'check the AWS profile');
  if (/region/i.test(message) && /missing|resolve/i.test(message)) {
    return new ConfigError(`no AWS region for ${context.where}`, 'set "region" in the profile\'s store, or AWS_REGION');
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|socket hang up|ECONNRESET/.test(message)) {
    return new StoreUnreachable(`cannot reach ${context.where} (${message})`, 'check your network or VPN and the store endpoint');
  }
  const failed = `${context.what} failed at ${context.where} (${name || 'error'}: ${message})`;
  if (status !== undefined && status >= 400 && status < 500) return new StoreRefused(failed, "run 'keybroker doctor' for details");
  return new StoreUnreachable(failed, "run 'keybroker doctor' for details");
}

export const module: ProviderModule = { storeSchema, createProvider };
