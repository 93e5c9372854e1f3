import { appBin } from '@nydus-ts/testing';
import { runCommand } from '@nydus-ts/snapshotter/testing';
import type { RunResult } from '@nydus-ts/snapshotter/testing';

/** Runs the built `nydusd-ts` binary. */
export function nydusdTs(args: readonly string[]): Promise<RunResult> {
  return runCommand(process.execPath, [appBin('nydusd-ts'), ...args], { timeoutMs: 600_000 });
}

/** `nydusd-ts pull` into containerd at `address`; throws with its stderr on failure; returns its report line. */
export async function pull(address: string, snapshotter: string, ref: string, extra: string[] = []): Promise<string> {
  const r = await nydusdTs(['pull', '--address', address, '--snapshotter', snapshotter, '--plain-http', ...extra, ref]);
  if (r.code !== 0) throw new Error(`nydusd-ts pull ${ref} exited with ${r.code}: ${r.stderr}`);
  return r.stdout.trim();
}
