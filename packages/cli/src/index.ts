export { runNydusify, buildNydusifyProgram, reportError } from './program.js';
export type { CommandRegistrar } from './program.js';
export { processIo } from './io.js';
export { interruptOnSignals, InterruptedError } from './interrupt.js';
export type { CliIo } from './io.js';
export { parseByteSize, parsePositiveInt, parseChoice, parseDuration } from './parse.js';
