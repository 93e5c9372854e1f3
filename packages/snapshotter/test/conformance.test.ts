// containerd's snapshotter conformance cases (snapshots/testsuite), against our snapshotter
// in-process and through its gRPC service (the adapter containerd's proxy client talks to).
import path from 'node:path';
import { NydusSnapshotter, SnapshotsClient, serveSnapshotter } from '@nydus-ts/snapshotter';
import { snapshotterSuite } from '@nydus-ts/snapshotter/conformance';

snapshotterSuite('NydusSnapshotter', async (root) => ({ snapshotter: await NydusSnapshotter.open({ root }) }));

snapshotterSuite('NydusSnapshotter over gRPC', async (root) => {
  const backend = await NydusSnapshotter.open({ root });
  const server = await serveSnapshotter({ address: path.join(root, '..', 'snap.sock'), snapshotter: backend });
  return {
    snapshotter: new SnapshotsClient({ address: server.address, snapshotter: 'nydus-ts' }),
    async teardown() {
      await server.close();
      await backend.close();
    },
  };
});
