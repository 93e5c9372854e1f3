/**
 * `@nydus-ts/cli/image`: `nydusify-ts image ...` on its own. The full command table (program.ts)
 * imports the registry client and the whole converter (conversion, archives, registry sources)
 * for the other commands; the image commands need only the local part, so the binary loads this
 * entry when the command is `image` (about 0.05-0.1 s less start-up).
 */
import type { CliIo } from './io.js';
import { registerImageCommands } from './commands/image.js';
import { runNydusifyProgram } from './program-core.js';

export { processIo } from './io.js';
export { interruptOnSignals, InterruptedError } from './interrupt.js';
export type { CliIo } from './io.js';

/** Runs `nydusify-ts image ...` (`argv` starts with `image`) and returns the exit code. */
export function runNydusifyImage(argv: string[], io: CliIo): Promise<number> {
  return runNydusifyProgram(argv, io, [registerImageCommands]);
}
