// `keybroker env`: the variables a CI job sets so that Claude Code (CLI, Agent SDK, the GitHub
// Action) reaches the gateway with the key, rendered for each CI's way of setting them for the
// rest of a job. Pure: the command reads the key and writes the result.
import { UsageError } from '../kernel/errors.ts';
import { customHeadersValue } from './surfaces.ts';

export const ciFormats = ['github', 'gitlab', 'shell'] as const;
export type CiFormat = (typeof ciFormats)[number];
export const keyVariables = ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN'] as const;
export type KeyVariable = (typeof keyVariables)[number];

export interface CiAssignments {
  /** Name → value, in the order they are set; the key's variable among them. */
  values: [string, string][];
  key: string;
}

export function ciAssignments(options: {
  key: string;
  keyVariable: KeyVariable;
  gateway?: string | undefined;
  gatewayHeaders?: Record<string, string> | undefined;
}): CiAssignments {
  const values: [string, string][] = [];
  if (options.gateway) values.push(['ANTHROPIC_BASE_URL', options.gateway]);
  values.push([options.keyVariable, options.key]);
  if (options.gatewayHeaders) values.push(['ANTHROPIC_CUSTOM_HEADERS', customHeadersValue(options.gatewayHeaders)]);
  return { values, key: options.key };
}

/** POSIX shell: `export NAME='value'`, for `eval "$(keybroker env --format shell)"`. */
export function renderShell(assignments: CiAssignments): string {
  return assignments.values.map(([name, value]) => `export ${name}=${shellSingleQuote(value)}\n`).join('');
}

function shellSingleQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * GitHub Actions: the mask command goes to the step's log (stdout) before anything else, and the
 * assignments to the $GITHUB_ENV file, which sets them for the job's later steps. A multi-line
 * value uses GitHub's `NAME<<DELIMITER` form with a delimiter the value cannot contain.
 */
export function renderGithub(assignments: CiAssignments, delimiter: string): { log: string; envFile: string } {
  const envFile = assignments.values
    .map(([name, value]) => (value.includes('\n') ? `${name}<<${delimiter}\n${value}\n${delimiter}\n` : `${name}=${value}\n`))
    .join('');
  if (assignments.values.some(([, value]) => value.includes(delimiter)))
    throw new UsageError('a value contains the GITHUB_ENV delimiter', 'run again');
  return { log: `::add-mask::${assignments.key}\n`, envFile };
}

/** The variables with which GitLab echoes every command and variable of a job into its log. */
const GITLAB_TRACE_VARIABLES = ['CI_DEBUG_TRACE', 'CI_DEBUG_SERVICES'] as const;
/** What Go's strconv.ParseBool reads as true: GitLab's runner decides tracing with it. */
const GO_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/**
 * GitLab masks only variables defined in the project's settings, never a value made at run time:
 * a job whose trace would echo the exports is refused before the store is read.
 */
export function refuseGitlabTrace(env: NodeJS.ProcessEnv): void {
  const traced = GITLAB_TRACE_VARIABLES.find((name) => GO_TRUE.has(env[name] ?? ''));
  if (traced) {
    throw new UsageError(
      `${traced}=${env[traced]} turns GitLab's debug trace on: it would print the key into the job log`,
      `unset ${traced} for this job (or set it to false)`,
    );
  }
}

/** GitLab: shell exports to `eval`, refused while the job is traced. */
export function renderGitlab(assignments: CiAssignments, env: NodeJS.ProcessEnv): string {
  refuseGitlabTrace(env);
  return renderShell(assignments);
}
