// What every command file exports, and what the edge hands it.
import type { ParseArgsConfig } from 'node:util';
import type { Output } from '../kernel/output.ts';

export interface RunContext {
  env: NodeJS.ProcessEnv;
  output: Output;
  now(): number;
  /** True when stdout is a terminal (pretty output allowed); `get` never looks. */
  isTTY: boolean;
  /** Debug trace on stderr (--verbose or KEYBROKER_DEBUG=1); src/cli/main.ts masks key-like text in it. */
  debug(message: string): void;
  /** Runs `say` after the command succeeded (exit 0), so that a failure's one line stays the only line. */
  afterSuccess?(say: () => void): void;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type ParsedValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Command {
  name: string;
  summary: string;
  /** Full --help text, with examples. */
  help: string;
  /** `COMMAND SUB --help`: a subcommand's own page, by subcommand name (else `help`). */
  subcommandHelp?: Record<string, string>;
  options: Options;
  /** Subcommands take positionals (`admin put`, `cache clear`). */
  allowPositionals?: boolean;
  /** Returns the exit code; throws a KeybrokerError for a failure. */
  run(values: ParsedValues, positionals: string[], context: RunContext): Promise<number>;
}

/**
 * A command listed by name and summary whose module loads only when it runs, so that a warm
 * `get` parses none of the others (each costs start-up time on every Claude Code call).
 */
export interface LazyCommand {
  name: string;
  summary: string;
  load(): Promise<Command>;
}

export type CommandEntry = Command | LazyCommand;

/** Flags every command takes. */
export const globalOptions = {
  config: { type: 'string' },
  profile: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const globalHelp = `Options for every command:
  --config FILE     the user-level config file (default: KEYBROKER_CONFIG, or the per-user path)
  --profile NAME    the profile to use (default: KEYBROKER_PROFILE, or "defaultProfile")
  -v, --verbose     a trace on stderr, every secret masked (also KEYBROKER_DEBUG=1)
  -h, --help        this help`;
