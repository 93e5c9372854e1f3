import { nodeNydusdCommand } from './snapshotter-config.js';

/** What the `nydusd-ts` app gives its containerd commands (process-level things). */
export interface ContainerdCommandHooks {
  /** Calls `handler` on SIGTERM/SIGINT; returns a function that removes it. */
  onSignal(handler: (signal: string) => void): () => void;
  /** How to run this nydusd-ts again (the daemons the snapshotter starts): `[node, bin]`. */
  selfCommand: string[];
}

/** Hooks from the running process. */
export function processHooks(): ContainerdCommandHooks {
  return {
    onSignal(handler) {
      const on = (sig: NodeJS.Signals): void => handler(sig);
      process.on('SIGTERM', on);
      process.on('SIGINT', on);
      return () => {
        process.off('SIGTERM', on);
        process.off('SIGINT', on);
      };
    },
    selfCommand: process.argv[1] ? nodeNydusdCommand(process.argv[1]) : [process.execPath],
  };
}
