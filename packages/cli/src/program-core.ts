import { Command, CommanderError } from 'commander';
import { exitCodeFor, fileSystemError, isNydusError } from '@nydus-ts/core';
import type { CliIo } from './io.js';
import { writeLine } from './io.js';
import { InterruptedError } from './interrupt.js';

/** A command module adds its subcommand(s) to the program. */
export type CommandRegistrar = (program: Command, io: CliIo) => void;

/**
 * The `nydusify-ts` program with the given command modules. Kept apart from the command table
 * (program.ts) so an entry point can load a single command without the libraries of the others.
 */
export function createNydusifyProgram(io: CliIo, registrars: readonly CommandRegistrar[]): Command {
  const program = new Command('nydusify-ts')
    .description('Build, inspect, convert, check and copy Nydus (RAFS v6) images')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .showHelpAfterError();
  for (const register of registrars) register(program, io);
  return program;
}

/** Parses `argv` (without node and script) with the given commands and returns the exit code. */
export async function runNydusifyProgram(argv: string[], io: CliIo, registrars: readonly CommandRegistrar[]): Promise<number> {
  const program = createNydusifyProgram(io, registrars);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, io);
  }
}

/**
 * Prints one line for a failed run and returns its exit code: 130/143 when the run was
 * interrupted by SIGINT/SIGTERM (whatever error the abort surfaced as), 2 for bad input, 1
 * otherwise. A failed system call names its path and errno; only an error that is none of
 * these (a bug) adds its stack.
 */
export function reportError(err: unknown, io: CliIo): number {
  if (err instanceof CommanderError) {
    // commander already printed the message (and help) for usage errors
    return err.exitCode === 0 ? 0 : 2;
  }
  const reason: unknown = io.signal?.aborted ? io.signal.reason : undefined;
  if (reason instanceof InterruptedError) {
    writeLine(io.stderr, `error: ${reason.message}`);
    return reason.exitCode;
  }
  const error = fileSystemError(err);
  if (isNydusError(error)) {
    writeLine(io.stderr, `error: ${escapedBytes(withFlagNames(error.message, error.optionNames))}`);
    return exitCodeFor(error);
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  writeLine(io.stderr, `error: ${message}`);
  return 1;
}

/**
 * The flags of library options that library errors name (`optionNames`); the libraries know
 * nothing of flags, so the CLI shows each option as the flag that sets it.
 */
export const OPTION_FLAGS: Readonly<Record<string, string>> = {
  type: '--type',
  compressor: '--compressor',
  digester: '--digester',
  chunkSize: '--chunk-size',
  chunkDict: '--chunk-dict',
  bootstrap: '--bootstrap',
  blobDir: '--blob-dir',
  blobIds: '--blob-ids',
  mode: '--mode',
  config: '--config',
  platform: '--platform',
  allPlatforms: '--all-platforms',
};

/** `message` with the first mention of each library option it names replaced by its flag. */
export function withFlagNames(message: string, optionNames: readonly string[]): string {
  let out = message;
  for (const name of optionNames) {
    const flag = OPTION_FLAGS[name];
    if (flag) out = out.replace(new RegExp(`(?<![\\w/.:-])${name}(?![\\w/.:-])`), flag);
  }
  return out;
}

/**
 * Messages name files, whose names are bytes: a byte that is not UTF-8 travels as a lone
 * surrogate U+DC80–U+DCFF (decodeFsName in @nydus-ts/format, not loaded here) and is shown as
 * `\xNN`, as listings show it, instead of the U+FFFD a terminal would get.
 */
function escapedBytes(message: string): string {
  return message.replace(/(?<![\ud800-\udbff])[\udc80-\udcff]/g, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16).padStart(2, '0')}`);
}
