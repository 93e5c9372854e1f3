import type { Writable } from 'node:stream';

/** Where a command reads its environment and writes its output; tests pass their own. */
export interface CliIo {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /**
   * Aborted when the run is to stop (nydusify-ts: on SIGINT/SIGTERM, with an InterruptedError as
   * reason; see interruptOnSignals): commands pass it to the libraries, which then remove what
   * the run created before they fail.
   */
  signal?: AbortSignal;
}

export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
}

export function writeLine(stream: Writable, line = ''): void {
  stream.write(line + '\n');
}
