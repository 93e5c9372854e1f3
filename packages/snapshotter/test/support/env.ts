// A registry, our snapshotter served in this process, and a private containerd using it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createConsoleLogger } from '@nydus-ts/core';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { StartRegistryOptions, TestRegistry } from '@nydus-ts/registry/testing';
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
  /** Closes the snapshotter and its server (daemons keep running) and opens it again on the same root and socket. */
  reopen(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestEnv(options: Omit<SnapshotterOptions, 'root'> = {}, registryOptions: StartRegistryOptions = {}): Promise<TestEnv> {
  // NYDUS_TS_TEST_LOG=debug shows the snapshotter's log while debugging a test.
  if (process.env.NYDUS_TS_TEST_LOG) options = { logger: createConsoleLogger({ level: process.env.NYDUS_TS_TEST_LOG as 'debug' }), ...options };
  const work = await mkdtemp(path.join(tmpdir(), 'sn-env-'));
  const stops: Array<() => Promise<void>> = [() => rm(work, { recursive: true, force: true })];
  const stop = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const registry = await startRegistry(registryOptions);
    stops.push(() => registry.stop());
    const root = path.join(work, 'snapshotter');
    const address = path.join(work, 'snapshotter.sock');
    const env = { work, registry } as TestEnv;
    env.snapshotter = await NydusSnapshotter.open({ root, ...options });
    env.server = await serveSnapshotter({ address, snapshotter: env.snapshotter, ...(options.logger && { logger: options.logger }) });
    stops.push(async () => {
      await env.server.close();
      await env.snapshotter.stopDaemons();
      await env.snapshotter.close();
    });
    env.direct = new SnapshotsClient({ address });
    stops.push(() => env.direct.close());
    env.containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { [SNAPSHOTTER]: address } });
    stops.push(() => env.containerd.stop());
    await waitForSnapshotter(env.containerd, SNAPSHOTTER);
    env.reopen = async () => {
      await env.server.close();
      await env.snapshotter.close();
      env.snapshotter = await NydusSnapshotter.open({ root, ...options });
      env.server = await serveSnapshotter({ address, snapshotter: env.snapshotter, ...(options.logger && { logger: options.logger }) });
      // containerd's channel to the plugin reconnects with a back-off: wait until it is through.
      await waitForSnapshotter(env.containerd, SNAPSHOTTER);
    };
    env.stop = stop;
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}
