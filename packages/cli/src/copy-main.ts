/**
 * `@nydus-ts/cli/copy`: `nydusify-ts copy` on its own. The full command table (program.ts)
 * imports the converter and format libraries for the other commands, which costs a copy about
 * 0.1 s of start-up for nothing; the binary loads this entry when the command is `copy`.
 */
import type { CliIo } from './io.js';
import { registerCopyCommand } from './commands/copy.js';
import { runNydusifyProgram } from './program-core.js';

export { processIo } from './io.js';
export { interruptOnSignals, InterruptedError } from './interrupt.js';
export type { CliIo } from './io.js';

/** Runs `nydusify-ts copy ...` (`argv` starts with `copy`) and returns the exit code. */
export function runNydusifyCopy(argv: string[], io: CliIo): Promise<number> {
  return runNydusifyProgram(argv, io, [registerCopyCommand]);
}
