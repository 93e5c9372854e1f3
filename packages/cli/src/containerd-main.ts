/**
 * `@nydus-ts/cli/containerd`: the containerd commands of `nydusd-ts` (`snapshotter`, `pull`) on
 * their own entry, so the daemon's own start-up does not load gRPC and SQLite.
 */
import { Command } from 'commander';
import type { CliIo } from './io.js';
import { reportError } from './program-core.js';
import { registerSnapshotterCommand } from './containerd/snapshotter-command.js';
import { registerPullCommand } from './containerd/pull-command.js';
import { processHooks } from './containerd/hooks.js';
import type { ContainerdCommandHooks } from './containerd/hooks.js';

export { processIo } from './io.js';
export type { CliIo } from './io.js';
export { processHooks } from './containerd/hooks.js';
export type { ContainerdCommandHooks } from './containerd/hooks.js';
export { resolveSnapshotterSettings } from './containerd/snapshotter-config.js';
export type { SnapshotterFlags, SnapshotterSettings } from './containerd/snapshotter-config.js';
export { parsePullFlags } from './containerd/pull-command.js';

/** The subcommands this entry runs (`argv[0]`). */
export const CONTAINERD_COMMANDS: readonly string[] = ['snapshotter', 'pull'];

/** Runs `nydusd-ts snapshotter|pull ...` and returns the exit code. */
export async function runNydusdContainerd(argv: string[], io: CliIo, hooks: ContainerdCommandHooks = processHooks()): Promise<number> {
  const program = new Command('nydusd-ts')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError();
  registerSnapshotterCommand(program, io, hooks);
  registerPullCommand(program, io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err, io);
  }
}
