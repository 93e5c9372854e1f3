/**
 * A {@link Snapshotter} over the snapshots gRPC API: our snapshotter's socket (what containerd's
 * proxy client sees) or containerd's own socket (`snapshotter` then picks the plugin, and keys
 * are containerd's namespaced ones).
 */
import type * as grpc from '@grpc/grpc-js';
import { SNAPSHOTS_SERVICE, fromProtoTimestamp } from './proto.js';
import type { ProtoTimestamp } from './proto.js';
import { dialService, serverStream, unary } from './grpc-client.js';
import type { CallContext } from './grpc-client.js';
import type { Mount, SnapshotInfo, SnapshotKind, SnapshotUsage, Snapshotter } from './types.js';

interface ProtoInfo {
  name: string;
  parent: string;
  kind: string;
  created_at: ProtoTimestamp | null;
  updated_at: ProtoTimestamp | null;
  labels: Record<string, string>;
}

function fromProtoInfo(p: ProtoInfo): SnapshotInfo {
  // containerd's proxy client treats anything but ACTIVE and VIEW as committed.
  const kind: SnapshotKind = p.kind === 'ACTIVE' || p.kind === 'VIEW' ? p.kind : 'COMMITTED';
  return { name: p.name, parent: p.parent, kind, created: fromProtoTimestamp(p.created_at), updated: fromProtoTimestamp(p.updated_at), labels: p.labels ?? {} };
}

function fromProtoMounts(ms: { type: string; source: string; options: string[] }[]): Mount[] {
  return (ms ?? []).map((m) => ({ type: m.type, source: m.source, options: m.options ?? [] }));
}

export interface SnapshotsClientOptions extends CallContext {
  /** Unix socket path. */
  address: string;
  /** Plugin name sent in every request (containerd picks the snapshotter by it). */
  snapshotter?: string;
}

export class SnapshotsClient implements Snapshotter {
  readonly #client: grpc.Client;
  readonly #name: string;
  readonly #ctx: CallContext;

  constructor(options: SnapshotsClientOptions) {
    this.#client = dialService(SNAPSHOTS_SERVICE, options.address);
    this.#name = options.snapshotter ?? '';
    this.#ctx = { namespace: options.namespace, lease: options.lease, timeoutMs: options.timeoutMs };
  }

  #call<Res>(method: string, req: Record<string, unknown>): Promise<Res> {
    return unary<Res>(this.#client, method, { snapshotter: this.#name, ...req }, this.#ctx);
  }

  async prepare(key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    return fromProtoMounts((await this.#call<{ mounts: Mount[] }>('Prepare', { key, parent, labels })).mounts);
  }

  async view(key: string, parent: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    return fromProtoMounts((await this.#call<{ mounts: Mount[] }>('View', { key, parent, labels })).mounts);
  }

  async mounts(key: string): Promise<Mount[]> {
    return fromProtoMounts((await this.#call<{ mounts: Mount[] }>('Mounts', { key })).mounts);
  }

  async commit(name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    await this.#call('Commit', { name, key, labels });
  }

  async remove(key: string): Promise<void> {
    await this.#call('Remove', { key });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return fromProtoInfo((await this.#call<{ info: ProtoInfo }>('Stat', { key })).info);
  }

  async update(info: Pick<SnapshotInfo, 'name' | 'labels'>, fieldPaths: string[] = []): Promise<SnapshotInfo> {
    const res = await this.#call<{ info: ProtoInfo }>('Update', { info: { name: info.name, labels: info.labels }, update_mask: { paths: fieldPaths } });
    return fromProtoInfo(res.info);
  }

  async list(filters: string[] = []): Promise<SnapshotInfo[]> {
    const batches = await serverStream<{ info: ProtoInfo[] }>(this.#client, 'List', { snapshotter: this.#name, filters }, this.#ctx);
    return batches.flatMap((b) => b.info.map(fromProtoInfo));
  }

  async usage(key: string): Promise<SnapshotUsage> {
    const res = await this.#call<{ size: number; inodes: number }>('Usage', { key });
    return { size: Number(res.size), inodes: Number(res.inodes) };
  }

  async cleanup(): Promise<void> {
    await this.#call('Cleanup', {});
  }

  async close(): Promise<void> {
    this.#client.close();
  }
}
