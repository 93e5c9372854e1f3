import { createRequire } from 'node:module';
import type * as Undici from 'undici';

let undici: typeof Undici | undefined;

/**
 * undici, loaded on first use: it takes ~250 ms to load, which every CLI command would pay at
 * start-up (even the ones that never touch a registry) if it were imported at the top.
 */
export function lazyUndici(): typeof Undici {
  undici ??= createRequire(import.meta.url)('undici') as typeof Undici;
  return undici;
}
