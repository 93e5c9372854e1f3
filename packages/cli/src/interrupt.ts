import { CancelledError } from '@nydus-ts/core';
import { constants } from 'node:os';

/** Why a run was aborted: the process received `signal`; it exits with 128 + its number. */
export class InterruptedError extends CancelledError {
  readonly signal: 'SIGINT' | 'SIGTERM';
  readonly exitCode: number;

  constructor(signal: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signal}`);
    this.name = 'InterruptedError';
    this.signal = signal;
    this.exitCode = 128 + constants.signals[signal];
  }
}

/** How long the run has, after the first signal, to remove what it created and return. */
const CLEANUP_GRACE_MS = 20_000;

let installed: AbortSignal | undefined;

/**
 * Turns SIGINT and SIGTERM into an abort of the returned signal (once per process), so that the
 * run removes its temporary files and half-made outputs before it ends (the entry point then
 * exits with 130 or 143). A second signal, or a run still busy after the grace period, ends the
 * process at once, with that exit code.
 */
export function interruptOnSignals(): AbortSignal {
  if (installed) return installed;
  const controller = new AbortController();
  installed = controller.signal;
  const forceExit = (reason: InterruptedError, why: string): void => {
    process.stderr.write(`error: ${reason.message}; ${why}: exiting without waiting for clean-up\n`);
    process.exit(reason.exitCode);
  };
  const onSignal = (signal: 'SIGINT' | 'SIGTERM'): void => {
    const reason = new InterruptedError(signal);
    if (controller.signal.aborted) {
      forceExit(reason, 'signalled again');
      return;
    }
    controller.abort(reason);
    setTimeout(() => forceExit(reason, `still running after ${CLEANUP_GRACE_MS / 1000} s`), CLEANUP_GRACE_MS).unref();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  return installed;
}
