// Part src/cli/: the edge: argv, one file per command, the wiring of the real world, errors to exit codes. May use: kernel, providers, secret, config, loader, cache, claude, gateway, broker, admin, doctor, sso.
// The edge: parses argv, runs one command, and turns every failure into one stderr line and
// its exit code. Nothing else in keybroker exits or prints errors.
import { format, parseArgs } from 'node:util';
import { globalHelp, globalOptions, type Command, type ParsedValues, type RunContext } from './command.ts';
import { EXIT_MEANINGS, ExitCode, KeybrokerError, UsageError, oneLine } from '../kernel/errors.ts';
import { processOutput, maskSecrets, type Output } from '../kernel/output.ts';
import { procPathVariables, relativePathVariables } from '../kernel/paths.ts';
import { commands, resolveCommand } from './commands/index.ts';
import { getCommand } from './commands/get.ts';

declare const __KEYBROKER_VERSION__: string | undefined;
const VERSION = typeof __KEYBROKER_VERSION__ === 'string' ? __KEYBROKER_VERSION__ : '0.0.0-dev';

export interface CliRuntime {
  env: NodeJS.ProcessEnv;
  output: Output;
  now(): number;
  isTTY: boolean;
}

export async function main(argv: string[], runtime: CliRuntime = defaultRuntime()): Promise<number> {
  const { output } = runtime;
  const afterSuccess: (() => void)[] = [];
  const verbose = argv.includes('--verbose') || argv.includes('-v') || runtime.env['KEYBROKER_DEBUG'] === '1';
  const context: RunContext = {
    env: runtime.env,
    output,
    now: runtime.now,
    get isTTY() {
      return runtime.isTTY;
    },
    debug: verbose ? (message) => output.stderr(`keybroker: debug: ${maskSecrets(message)}`) : () => {},
    afterSuccess: (say) => afterSuccess.push(say),
  };
  const relative = relativePathVariables(runtime.env);
  if (relative.length) {
    output.stderr(
      `keybroker: ignoring ${relative.join(', ')}: not an absolute path (Claude Code runs keybroker in your project's folder, which would then choose where keys are kept); set an absolute path`,
    );
  }
  const intoProc = procPathVariables(runtime.env);
  if (intoProc.length) {
    output.stderr(
      `keybroker: ignoring ${intoProc.join(', ')}: it leads into /proc (/proc/self/cwd is the folder Claude Code runs in, your project's, which would then choose where keys are kept and sent); set a path outside /proc`,
    );
  }
  const restore = routeLibraryOutput(context.debug);
  try {
    const topLevel = topLevelRequest(argv);
    if (topLevel) {
      output.stdout(topLevel === 'version' ? `keybroker ${VERSION}\n` : topHelp());
      return ExitCode.ok;
    }
    const { command, values, positionals } = await parseCommandLine(argv);
    if (values['help']) {
      const sub = positionals[0];
      const help =
        sub !== undefined && command.subcommandHelp && Object.hasOwn(command.subcommandHelp, sub)
          ? command.subcommandHelp[sub]!
          : command.help;
      context.output.stdout(`${help}\n\n${globalHelp}\n`);
      return ExitCode.ok;
    }
    const code = await command.run(values, positionals, context);
    if (code === ExitCode.ok) for (const say of afterSuccess) say();
    return code;
  } catch (error) {
    return report(error, output, context);
  } finally {
    restore();
  }
}

const CONSOLE_METHODS = ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const;

/**
 * Keybroker prints through `output` only; what a store's SDK writes on its own (the AWS SDK's
 * 9-line "Multiple credential sources detected", process warnings) goes to the debug trace, so
 * that Claude Code shows the developer keybroker's own lines only and stdout holds the key alone.
 * Returns what undoes it.
 */
function routeLibraryOutput(debug: (message: string) => void): () => void {
  const saved = CONSOLE_METHODS.map((name) => [name, console[name]] as const);
  for (const name of CONSOLE_METHODS)
    console[name] = (...args: unknown[]) => debug(`a library said (console.${name}): ${oneLine(format(...args))}`);
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  const onWarning = (warning: Error) => debug(`a library warned: ${warning.name}: ${oneLine(warning.message)}`);
  process.on('warning', onWarning);
  return () => {
    for (const [name, method] of saved) console[name] = method as never;
    process.off('warning', onWarning);
    for (const listener of listeners) process.on('warning', listener);
  };
}

/** `keybroker --version` and `keybroker --help`/`help`: answered before any command is parsed. */
export function topLevelRequest(argv: string[]): 'version' | 'help' | undefined {
  if (argv[0] === '--version' || argv[0] === '-V') return 'version';
  if (argv[0] === 'help' || ((argv[0] === '--help' || argv[0] === '-h') && argv.length === 1)) return 'help';
  return undefined;
}

/** Global flags given before the command (`keybroker -v get`, `--profile eu status`), as gh and kubectl take them. */
const LEADING_GLOBAL = /^(?:-v|--verbose|--(?:profile|config)(?:=.*)?)$/;

/**
 * The command an argv names and its flags, parsed as `main` runs them (the docs' command lines are
 * checked with this too). Global flags may come before the command; no command is `get`.
 */
export async function parseCommandLine(argv: string[]): Promise<{ command: Command; values: ParsedValues; positionals: string[] }> {
  const leading: string[] = [];
  let at = 0;
  while (at < argv.length && LEADING_GLOBAL.test(argv[at]!)) {
    const flag = argv[at++]!;
    leading.push(flag);
    if ((flag === '--profile' || flag === '--config') && at < argv.length) leading.push(argv[at++]!);
  }
  const name = argv[at] !== undefined && !argv[at]!.startsWith('-') ? argv[at] : undefined;
  const entry = name === undefined ? getCommand : commands.find((command) => command.name === name);
  if (!entry) throw new UsageError(`unknown command "${name}"`, `run 'keybroker --help' for the commands`);
  const command = await resolveCommand(entry);
  const args = [...argv.slice(name === undefined ? at : at + 1), ...leading];
  try {
    const parsed = parseArgs({
      args,
      options: { ...globalOptions, ...command.options },
      allowPositionals: command.allowPositionals ?? false,
      strict: true,
    });
    return { command, values: parsed.values, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError(
      `${command.name}: ${oneLine((error as Error).message).replace(/\. To specify a positional.*$/, '')}`,
      `run 'keybroker ${command.name} --help'`,
    );
  }
}

function report(error: unknown, output: Output, context: RunContext): number {
  if (error instanceof KeybrokerError) {
    // Typed errors quote what a store or identity provider said, and that text may hold the key.
    output.stderr(`keybroker: ${maskSecrets(error.line())}`);
    if (error.cause) context.debug(`cause: ${String((error.cause as Error).stack ?? error.cause)}`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  output.stderr(
    `keybroker: internal error: ${oneLine(maskSecrets(message)).slice(0, 300)}: run again with KEYBROKER_DEBUG=1 and report it`,
  );
  context.debug(String((error as Error)?.stack ?? error));
  return ExitCode.internal;
}

function topHelp(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  return `keybroker ${VERSION}: your LLM-gateway key for Claude Code, from the company's secrets store

Usage: keybroker [command] [options]       (no command: get)

Commands:
${commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join('\n')}

${globalHelp}
  -V, --version     print the version

Run 'keybroker COMMAND --help' for a command's options and examples.
Exit codes:
${Object.entries(EXIT_MEANINGS)
  .map(([code, meaning]) => `  ${code.padStart(3)}  ${meaning}`)
  .join('\n')}
`;
}

function defaultRuntime(): CliRuntime {
  return {
    env: process.env,
    output: processOutput,
    now: Date.now,
    // A getter: touching process.stdout builds its stream (tty, net) which `get` never needs.
    get isTTY() {
      return Boolean(process.stdout.isTTY);
    },
  };
}
