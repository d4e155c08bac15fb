// The secret's location: the profile's template with `{user}` filled in, never leaving it.
import { ConfigError } from '../kernel/errors.ts';

/** Why `user` cannot stand in a secret name, or undefined when it can. */
export function userNameProblem(user: string): string | undefined {
  if (user.length === 0) return 'it is empty';
  if (user.includes('/') || user.includes('\\')) return 'it contains a path separator';
  if (user === '.' || user.includes('..')) return 'it contains ".."';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a user name with a control character is refused
  if (/[\u0000-\u001f\u007f]/.test(user)) return 'it contains a control character';
  if (/\s/.test(user)) return 'it contains white space';
  if (user.includes('{') || user.includes('}')) return 'it contains a brace';
  return undefined;
}

export function resolveSecretName(template: string, user: string, userSource: string): string {
  if (!template.includes('{user}')) return template;
  const problem = userNameProblem(user);
  if (problem) {
    throw new ConfigError(
      `the user name ${JSON.stringify(user)} from ${userSource} cannot be used in the secret name "${template}": ${problem}`,
      'set "user" in the profile to the other source ("os" or "store"), or fix the name',
    );
  }
  return template.replaceAll('{user}', user);
}
