// Every command, in the order `keybroker --help` lists them. One file per command.
import type { Command } from '../command.ts';
import { getCommand } from './get.ts';
import { doctorCommand } from './doctor.ts';
import { statusCommand } from './status.ts';
import { setupCommand } from './setup.ts';
import { configCommand } from './config.ts';
import { loginCommand } from './login.ts';
import { cacheCommand } from './cache.ts';

export const commands: Command[] = [getCommand, doctorCommand, statusCommand, setupCommand, configCommand, loginCommand, cacheCommand];
