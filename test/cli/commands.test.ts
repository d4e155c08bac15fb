import { describe, expect, it } from 'vitest';
import { commands, resolveCommand } from '../../src/cli/commands/index.ts';

describe('the command list', () => {
  it.each(commands.map((entry) => [entry.name, entry] as const))(
    'lists %s with the name and summary its own module gives',
    async (_name, entry) => {
      const command = await resolveCommand(entry);
      expect({ name: command.name, summary: command.summary }).toEqual({ name: entry.name, summary: entry.summary });
    },
  );

  it('loads only get up front (the hot path)', () => {
    expect(commands.filter((entry) => !('load' in entry)).map((entry) => entry.name)).toEqual(['get']);
  });
});
