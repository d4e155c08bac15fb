import { describe, expect, it } from 'vitest';
import { resolveSecretName } from '../../src/secret/name.ts';
import { ConfigError } from '../../src/kernel/errors.ts';

describe('the secret name template', () => {
  it('puts the user into {user}', () => {
    expect(resolveSecretName('claude-code/keys/{user}', 'alice@corp.com', 'the OS login')).toBe('claude-code/keys/alice@corp.com');
  });

  it.each(['../bob', 'a/b', 'a\\b', '', '..', 'bob\u0000', 'a b', '{user}'])(
    'refuses a user name that would leave the template: %j',
    (user) => {
      expect(() => resolveSecretName('claude-code/keys/{user}', user, 'the store identity')).toThrow(ConfigError);
    },
  );

  it('leaves a template without {user} as it is', () => {
    expect(resolveSecretName('shared/key', '../anything', 'x')).toBe('shared/key');
  });
});
