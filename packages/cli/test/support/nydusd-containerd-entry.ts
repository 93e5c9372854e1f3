// `nydusd-ts snapshotter|pull` as a process, for tests that kill it (bundled from the sources by
// bundleTestEntry; the nydusd-ts app dispatches to the same entry).
import { processHooks, processIo, runNydusdContainerd } from '@nydus-ts/cli/containerd';

process.exitCode = await runNydusdContainerd(process.argv.slice(2), processIo(), processHooks());
