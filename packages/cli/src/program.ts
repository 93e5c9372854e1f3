import type { Command } from 'commander';
import type { CliIo } from './io.js';
import { registerImageCommands } from './commands/image.js';
import { registerCopyCommand } from './commands/copy.js';
import { registerCheckCommand } from './commands/check.js';
import { registerConvertCommand } from './commands/convert.js';
import { createNydusifyProgram, runNydusifyProgram } from './program-core.js';
import type { CommandRegistrar } from './program-core.js';

export type { CommandRegistrar } from './program-core.js';
export { reportError } from './program-core.js';

// One entry per command module (src/commands/*.ts), in help order.
const registrars: CommandRegistrar[] = [registerImageCommands, registerCopyCommand, registerConvertCommand, registerCheckCommand];

export function buildNydusifyProgram(io: CliIo): Command {
  return createNydusifyProgram(io, registrars);
}

/** Runs nydusify-ts with `argv` (without node and script) and returns the exit code. */
export function runNydusify(argv: string[], io: CliIo): Promise<number> {
  return runNydusifyProgram(argv, io, registrars);
}
