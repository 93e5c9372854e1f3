import type { Writable } from 'node:stream';
import { interruptOnSignals } from './interrupt.js';

/** Where a command reads its environment and writes its output; tests pass their own. */
export interface CliIo {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * Aborted when the run is to stop (SIGINT/SIGTERM for the real process, with an
   * InterruptedError as reason): commands pass it to the libraries, which then remove what the
   * run created before they fail.
   */
  signal?: AbortSignal;
}

/** The process's own io; SIGINT and SIGTERM abort its signal instead of killing the process. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd(), signal: interruptOnSignals() };
}

export function writeLine(stream: Writable, line = ''): void {
  stream.write(line + '\n');
}
