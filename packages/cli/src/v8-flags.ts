import { setFlagsFromString } from 'node:v8';

/**
 * undici parses HTTP with llhttp compiled to WebAssembly. V8 first compiles it with its baseline
 * compiler (Liftoff) and, once the parser runs hot, again with TurboFan on a background thread:
 * about 0.1 s of CPU competing with the transfer, and the process cannot exit before that
 * compilation finishes (70-230 ms after the summary line under load). Registry commands (copy,
 * convert, check) only frame a few dozen messages and hand body bytes on as slices, so baseline
 * code costs nothing measurable. Must run before undici compiles llhttp (its first request).
 */
export function baselineWasmOnly(): void {
  try {
    setFlagsFromString('--liftoff-only');
  } catch {
    // not settable on this runtime: only slower
  }
}
