// Every command, in the order `keybroker --help` lists them. One file per command.
import type { Command } from '../command.ts';
import { getCommand } from './get.ts';
import { doctorCommand } from './doctor.ts';

export const commands: Command[] = [getCommand, doctorCommand];
