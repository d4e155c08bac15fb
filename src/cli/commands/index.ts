// Every command, in the order `keybroker --help` lists them. One file per command. Only `get`
// is loaded up front: the others load when they run (test/cli/commands.test.ts keeps each
// summary here equal to its command's own).
import type { CommandEntry, LazyCommand, Command } from '../command.ts';
import { getCommand } from './get.ts';

const lazy = (name: string, summary: string, load: () => Promise<Command>): LazyCommand => ({ name, summary, load });

export const commands: CommandEntry[] = [
  getCommand,
  lazy(
    'headers',
    'print HTTP headers as JSON (MCP headersHelper, otelHeadersHelper)',
    async () => (await import('./headers.ts')).headersCommand,
  ),
  lazy(
    'env',
    'CI: set ANTHROPIC_BASE_URL and the key for the rest of a job (github, gitlab, shell)',
    async () => (await import('./env.ts')).envCommand,
  ),
  lazy(
    'doctor',
    'check every layer (config, store, cache, Claude Code, gateway) and say what to fix',
    async () => (await import('./doctor.ts')).doctorCommand,
  ),
  lazy(
    'status',
    'show the profile and the cached key (fingerprint, version, age, expiry, next refresh)',
    async () => (await import('./status.ts')).statusCommand,
  ),
  lazy(
    'setup',
    'print (or --write) the Claude Code settings that make it use keybroker',
    async () => (await import('./setup.ts')).setupCommand,
  ),
  lazy(
    'config',
    'show the effective configuration and where each value came from; config init',
    async () => (await import('./config.ts')).configCommand,
  ),
  lazy(
    'login',
    'log in to the store (browser flow, or the exact CLI command), then cache the key',
    async () => (await import('./login.ts')).loginCommand,
  ),
  lazy(
    'logout',
    'forget the SSO sign-in of an oidc profile (refresh and access tokens)',
    async () => (await import('./logout.ts')).logoutCommand,
  ),
  lazy('cache', 'cache clear: forget the cached key (the next get reads the store)', async () => (await import('./cache.ts')).cacheCommand),
  lazy(
    'admin',
    "provision, rotate, revoke and list developers' keys; print the store's access policy",
    async () => (await import('./admin.ts')).adminCommand,
  ),
];

/** The full command of an entry (loading its module when it is a lazy one). */
export async function resolveCommand(entry: CommandEntry): Promise<Command> {
  return 'load' in entry ? entry.load() : entry;
}
