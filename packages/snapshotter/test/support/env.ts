// A registry, our snapshotter served in this process, and a private containerd using it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { NydusSnapshotter, SnapshotsClient, serveSnapshotter } from '@nydus-ts/snapshotter';
import type { SnapshotsServer, SnapshotterOptions } from '@nydus-ts/snapshotter';
import { startContainerd, waitForSnapshotter } from '@nydus-ts/snapshotter/testing';
import type { TestContainerd } from '@nydus-ts/snapshotter/testing';

export const SNAPSHOTTER = 'nydus-ts';

export interface TestEnv {
  work: string;
  registry: TestRegistry;
  containerd: TestContainerd;
  snapshotter: NydusSnapshotter;
  server: SnapshotsServer;
  /** Talks to our snapshotter directly (backend keys). */
  direct: SnapshotsClient;
  stop(): Promise<void>;
}

export async function startTestEnv(options: Omit<SnapshotterOptions, 'root'> = {}): Promise<TestEnv> {
  const work = await mkdtemp(path.join(tmpdir(), 'sn-env-'));
  const stops: Array<() => Promise<void>> = [() => rm(work, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const registry = await startRegistry();
    stops.push(() => registry.stop());
    const snapshotter = await NydusSnapshotter.open({ root: path.join(work, 'snapshotter'), ...options });
    stops.push(async () => {
      await snapshotter.stopDaemons();
      await snapshotter.close();
    });
    const server = await serveSnapshotter({ address: path.join(work, 'snapshotter.sock'), snapshotter });
    stops.push(() => server.close());
    const direct = new SnapshotsClient({ address: server.address });
    stops.push(() => direct.close());
    const containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { [SNAPSHOTTER]: server.address } });
    stops.push(() => containerd.stop());
    await waitForSnapshotter(containerd, SNAPSHOTTER);
    return { work, registry, containerd, snapshotter, server, direct, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
