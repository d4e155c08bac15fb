import { describe, expect, it } from 'vitest';
import { resolveSecretName, userNameProblem } from '../../src/secret/name.ts';
import { ConfigError } from '../../src/kernel/errors.ts';

describe('the secret name template', () => {
  it('puts the user into {user}', () => {
    expect(resolveSecretName('claude-code/keys/{user}', 'alice@corp.com', 'the OS login')).toBe('claude-code/keys/alice@corp.com');
  });

  it('puts the user into every {user} of the template', () => {
    expect(resolveSecretName('keys/{user}/{user}.json', 'alice', 'the OS login')).toBe('keys/alice/alice.json');
  });

  it.each([
    ['../bob', 'it contains a path separator'],
    ['a/b', 'it contains a path separator'],
    ['a\\b', 'it contains a path separator'],
    ['', 'it is empty'],
    ['..', 'it contains ".."'],
    ['.', 'it contains ".."'],
    ['bob..', 'it contains ".."'],
    ['bob\u0000', 'it contains a control character'],
    ['bob\u001f', 'it contains a control character'],
    ['bob\u007f', 'it contains a control character'],
    ['a b', 'it contains white space'],
    ['a\u00a0b', 'it contains white space'],
    ['{user}', 'it contains a brace'],
    ['a}', 'it contains a brace'],
  ])('refuses a user name that would leave the template: %j (%s), naming the source and the fix', (user, problem) => {
    expect(userNameProblem(user)).toBe(problem);
    const error = catchError(() => resolveSecretName('claude-code/keys/{user}', user, 'the store identity'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      `the user name ${JSON.stringify(user)} from the store identity cannot be used in the secret name "claude-code/keys/{user}": ${problem}`,
    );
    expect((error as ConfigError).fix).toBe('set "user" in the profile to the other source ("os" or "store"), or fix the name');
  });

  it('accepts names a login or an IAM user can have', () => {
    for (const user of ['alice', 'alice.smith', 'alice@corp.com', 'a-b_c+d=e,f', 'A']) expect(userNameProblem(user)).toBeUndefined();
  });

  it('leaves a template without {user} as it is', () => {
    expect(resolveSecretName('shared/key', '../anything', 'x')).toBe('shared/key');
  });
});

function catchError(call: () => unknown): Error {
  try {
    call();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
}
