// The AWS provider's helpers, each alone: `{user}` from a caller ARN, "already exists" in both
// spellings, a listing entry as an admin sees it, and the SDK's errors as keybroker's typed ones.
// The store itself (moto) is the contract suite's (providers.test.ts).
import { describe, expect, it } from 'vitest';
import { existsAlready, mapAwsError, summaryOf, userFromArn } from '../../providers/aws.ts';
import type { FailedCall } from '../../providers/provider.ts';
import { AccessDenied, ConfigError, NotAuthenticated, SecretNotFound, StoreUnreachable } from '../../src/kernel/errors.ts';

const CALL: FailedCall = {
  what: 'GetSecretValue',
  secret: 'claude-code/keys/alice',
  where: 'AWS Secrets Manager (us-east-1)',
  loginFix: "run 'aws sso login'",
  timeoutMs: 5000,
};
const awsError = (name: string, message: string, status?: number) =>
  Object.assign(new Error(message), { name, ...(status ? { $metadata: { httpStatusCode: status } } : {}) });

describe('AWS helpers', () => {
  it("takes {user} from an IAM user, an assumed role's session, a federated user and root", () => {
    expect(userFromArn('arn:aws:iam::123456789012:user/dev/alice')).toBe('alice');
    expect(userFromArn('arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Dev_abc/alice@corp.com')).toBe('alice@corp.com');
    expect(userFromArn('arn:aws:sts::123456789012:federated-user/bob')).toBe('bob');
    expect(userFromArn('arn:aws:iam::123456789012:root')).toBe('root');
  });

  it('recognises a taken name: a live secret, or one scheduled for deletion, and nothing else', () => {
    expect(existsAlready(awsError('ResourceExistsException', 'exists'))).toBe(true);
    expect(
      existsAlready(
        awsError(
          'InvalidRequestException',
          "You can't create this secret because a secret with this name is already scheduled for deletion.",
        ),
      ),
    ).toBe(true);
    expect(existsAlready(awsError('InvalidRequestException', 'bad parameter'))).toBe(false);
    expect(existsAlready(awsError('AccessDeniedException', 'denied'))).toBe(false);
  });

  it('lists an entry with its AWSCURRENT version and tags, disabled once scheduled for deletion', () => {
    const created = new Date('2026-01-02T03:04:05Z');
    const summary = summaryOf({
      Name: 'claude-code/keys/alice',
      SecretVersionsToStages: { v1: ['AWSPREVIOUS'], v2: ['AWSCURRENT'] },
      Tags: [{ Key: 'managed-by', Value: 'keybroker' }],
      CreatedDate: created,
    });
    expect(summary).toEqual({
      name: 'claude-code/keys/alice',
      enabled: true,
      version: 'v2',
      createdAt: created,
      labels: { 'managed-by': 'keybroker' },
    });
    expect(summaryOf({ Name: 'x', DeletedDate: created }).enabled).toBe(false);
  });

  it("maps the SDK's errors to the typed error that names the fix", () => {
    const cases: [Error, new (...args: never[]) => Error, RegExp][] = [
      [awsError('ResourceNotFoundException', 'not found'), SecretNotFound, /secret "claude-code\/keys\/alice" .* does not exist/],
      [awsError('InvalidRequestException', 'the secret is marked for deletion'), SecretNotFound, /scheduled for deletion/],
      [awsError('SyntaxError', 'Unexpected token <', 403), AccessDenied, /access denied .*\(HTTP 403\)/],
      [awsError('Error', 'The SSO session associated with this profile has expired'), NotAuthenticated, /no valid SSO session/],
      [awsError('ExpiredTokenException', 'expired'), NotAuthenticated, /not logged in to AWS/],
      [Object.assign(new Error('socket'), { name: 'TimeoutError', code: 'ECONNRESET' }), StoreUnreachable, /cannot reach .*ECONNRESET/],
      [awsError('TimeoutError', 'timed out'), StoreUnreachable, /did not answer GetSecretValue within 5000 ms/],
      [awsError('InternalServiceError', 'boom', 500), StoreUnreachable, /is unavailable/],
      [awsError('Error', 'Region is missing'), ConfigError, /no AWS region/],
    ];
    for (const [error, type, message] of cases) {
      const mapped = mapAwsError(error, CALL);
      expect(mapped, error.message).toBeInstanceOf(type);
      expect(mapped.message).toMatch(message);
    }
    expect(mapAwsError(awsError('ExpiredTokenException', 'expired'), CALL).fix).toBe(CALL.loginFix);
  });
});
