// A structural checker for IAM JSON policies, after AWS's "IAM JSON policy grammar" reference:
// the elements, their types and allowed values, action and ARN shapes, condition operators and
// policy variables. It answers the problems found, so a test can show what is wrong.

const TOP_LEVEL = new Set(['Version', 'Id', 'Statement']);
const STATEMENT = new Set(['Sid', 'Effect', 'Principal', 'NotPrincipal', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']);
const BASE_OPERATORS = [
  'StringEquals',
  'StringNotEquals',
  'StringEqualsIgnoreCase',
  'StringNotEqualsIgnoreCase',
  'StringLike',
  'StringNotLike',
  'NumericEquals',
  'NumericNotEquals',
  'NumericLessThan',
  'NumericLessThanEquals',
  'NumericGreaterThan',
  'NumericGreaterThanEquals',
  'DateEquals',
  'DateNotEquals',
  'DateLessThan',
  'DateLessThanEquals',
  'DateGreaterThan',
  'DateGreaterThanEquals',
  'Bool',
  'BinaryEquals',
  'IpAddress',
  'NotIpAddress',
  'ArnEquals',
  'ArnLike',
  'ArnNotEquals',
  'ArnNotLike',
];
const OPERATOR = new RegExp(`^(ForAllValues:|ForAnyValue:)?(${BASE_OPERATORS.join('|')})(IfExists)?$|^Null$`);
/** service:Action, with * and ? wildcards in the action part. */
const ACTION = /^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$/;
/** arn:partition:service:region:account:resource, each part allowed to hold wildcards. */
const ARN = /^arn:(aws|aws-cn|aws-us-gov|\*):[a-z0-9-]+:[a-z0-9-*]*:(\d{12}|\*|)?:.+$/;
/** The policy variables IAM substitutes (global condition keys and service keys, tags). */
const VARIABLE = /\$\{([^}]*)\}/g;
const KNOWN_VARIABLE =
  /^(aws:(username|userid|PrincipalAccount|PrincipalType|SourceIp|CurrentTime|EpochTime|SecureTransport|PrincipalTag\/[\w+=,.@:/-]+|RequestTag\/[\w+=,.@:/-]+|ResourceTag\/[\w+=,.@:/-]+|PrincipalOrgID|PrincipalArn|SourceAccount|SourceArn|FederatedProvider|TokenIssueTime)|(?!aws:)[a-z0-9-]+:[\w/.-]+|\*|\?|\$)$/;

export function iamPolicyProblems(document: unknown): string[] {
  const problems: string[] = [];
  if (!isObject(document)) return ['the policy is not a JSON object'];
  for (const key of Object.keys(document)) if (!TOP_LEVEL.has(key)) problems.push(`unknown top-level element "${key}"`);
  if (document['Version'] !== '2012-10-17' && document['Version'] !== '2008-10-17')
    problems.push('Version must be "2012-10-17" (needed for policy variables)');
  if (document['Version'] === '2008-10-17' && JSON.stringify(document).includes('${'))
    problems.push('policy variables need Version 2012-10-17');
  const statements = Array.isArray(document['Statement'])
    ? document['Statement']
    : isObject(document['Statement'])
      ? [document['Statement']]
      : undefined;
  if (!statements || statements.length === 0) return [...problems, 'Statement must be a statement or a non-empty array of them'];
  const sids = new Set<string>();
  statements.forEach((statement, index) => {
    const at = `Statement[${index}]`;
    if (!isObject(statement)) {
      problems.push(`${at} is not an object`);
      return;
    }
    for (const key of Object.keys(statement)) if (!STATEMENT.has(key)) problems.push(`${at}: unknown element "${key}"`);
    const sid = statement['Sid'];
    if (sid !== undefined) {
      if (typeof sid !== 'string' || !/^[A-Za-z0-9]+$/.test(sid)) problems.push(`${at}: Sid must be letters and digits`);
      else if (sids.has(sid)) problems.push(`${at}: duplicate Sid "${sid}"`);
      else sids.add(sid);
    }
    if (statement['Effect'] !== 'Allow' && statement['Effect'] !== 'Deny') problems.push(`${at}: Effect must be "Allow" or "Deny"`);
    exactlyOne(statement, 'Action', 'NotAction', at, problems);
    exactlyOne(statement, 'Resource', 'NotResource', at, problems);
    for (const key of ['Action', 'NotAction'] as const) {
      for (const action of strings(statement[key], `${at}.${key}`, problems))
        if (!ACTION.test(action)) problems.push(`${at}.${key}: "${action}" is not service:Action`);
    }
    for (const key of ['Resource', 'NotResource'] as const) {
      for (const resource of strings(statement[key], `${at}.${key}`, problems)) {
        if (resource !== '*' && !ARN.test(resource)) problems.push(`${at}.${key}: "${resource}" is not an ARN or "*"`);
        checkVariables(resource, `${at}.${key}`, problems);
      }
    }
    if (statement['Principal'] !== undefined || statement['NotPrincipal'] !== undefined)
      problems.push(`${at}: an identity-based policy has no Principal`);
    const condition = statement['Condition'];
    if (condition !== undefined) {
      if (!isObject(condition)) problems.push(`${at}.Condition must be an object`);
      else
        for (const [operator, block] of Object.entries(condition)) {
          if (!OPERATOR.test(operator)) problems.push(`${at}.Condition: unknown operator "${operator}"`);
          if (!isObject(block)) {
            problems.push(`${at}.Condition.${operator} must map condition keys to values`);
            continue;
          }
          for (const [key, value] of Object.entries(block)) {
            if (!/^[A-Za-z0-9-]+:[\w/.:+=,@-]+$/.test(key)) problems.push(`${at}.Condition.${operator}: "${key}" is not a condition key`);
            const values = Array.isArray(value) ? value : [value];
            if (values.length === 0 || values.some((item) => !['string', 'number', 'boolean'].includes(typeof item)))
              problems.push(`${at}.Condition.${operator}.${key}: values must be strings, numbers or booleans`);
            if (operator === 'Null' && values.some((item) => String(item) !== 'true' && String(item) !== 'false'))
              problems.push(`${at}.Condition.Null.${key} must be "true" or "false"`);
          }
        }
    }
  });
  if (JSON.stringify(document).length > 6_144) problems.push('a managed policy is limited to 6,144 characters');
  return problems;
}

function checkVariables(text: string, at: string, problems: string[]): void {
  for (const match of text.matchAll(VARIABLE))
    if (!KNOWN_VARIABLE.test(match[1]!)) problems.push(`${at}: unknown policy variable \${${match[1]}}`);
  if (/\$\{[^}]*$/.test(text)) problems.push(`${at}: unclosed policy variable`);
}

function exactlyOne(statement: Record<string, unknown>, a: string, b: string, at: string, problems: string[]): void {
  const count = Number(statement[a] !== undefined) + Number(statement[b] !== undefined);
  if (count !== 1) problems.push(`${at}: exactly one of ${a} and ${b} is required`);
}

function strings(value: unknown, at: string, problems: string[]): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0 || list.some((item) => typeof item !== 'string')) {
    problems.push(`${at} must be a string or a non-empty array of strings`);
    return [];
  }
  return list as string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** IAM's wildcard match (`*` any run, `?` one character), as it compares a Resource to an ARN. */
export function iamWildcardMatches(pattern: string, value: string): boolean {
  const regex = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
  return regex.test(value);
}

/** The pattern with policy variables replaced by the request's values. */
export function substituteVariables(pattern: string, values: Record<string, string>): string {
  return pattern.replace(VARIABLE, (whole, name: string) => values[name] ?? whole);
}
