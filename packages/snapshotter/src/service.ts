/**
 * containerd's Snapshots gRPC service over any {@link Snapshotter} (a thin adapter, like
 * containerd's contrib/snapshotservice): convert the request, call, map the error.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { noopLogger } from '@nydus-ts/core';
import type { Logger } from '@nydus-ts/core';
import { SNAPSHOTS_SERVICE, containerdService, toProtoTimestamp } from './proto.js';
import type { ProtoTimestamp } from './proto.js';
import { toServiceError } from './grpc-errors.js';
import type { Mount, SnapshotInfo, Snapshotter } from './types.js';

interface ProtoInfo {
  name: string;
  parent: string;
  kind: string;
  created_at: ProtoTimestamp;
  updated_at: ProtoTimestamp;
  labels: Record<string, string>;
}

function toProtoInfo(info: SnapshotInfo): ProtoInfo {
  return {
    name: info.name,
    parent: info.parent,
    kind: info.kind,
    created_at: toProtoTimestamp(info.created),
    updated_at: toProtoTimestamp(info.updated),
    labels: info.labels,
  };
}

function toProtoMounts(mounts: Mount[]): { type: string; source: string; target: string; options: string[] }[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}

/** Snapshots sent per List stream message (as containerd's reference adapter). */
const LIST_BATCH = 100;

type Unary = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** The handlers of `containerd.services.snapshots.v1.Snapshots` for `sn`. */
export function snapshotsServiceHandlers(sn: Snapshotter, logger: Logger = noopLogger): grpc.UntypedServiceImplementation {
  const unary =
    <Req, Res>(name: string, fn: (req: Req) => Promise<Res>): Unary =>
    (call, callback) => {
      const started = Date.now();
      fn(call.request as Req).then(
        (res) => {
          logger.trace('snapshots rpc', { rpc: name, ms: Date.now() - started });
          callback(null, res);
        },
        (err: unknown) => {
          const se = toServiceError(err);
          // AlreadyExists and NotFound are answers containerd expects, not failures.
          const quiet = se.code === grpc.status.ALREADY_EXISTS || se.code === grpc.status.NOT_FOUND;
          (quiet ? logger.debug : logger.warn).call(logger, 'snapshots rpc failed', { rpc: name, code: grpc.status[se.code!], error: se.details, request: call.request as unknown });
          callback(se as grpc.ServiceError);
        },
      );
    };
  const empty = {};
  return {
    Prepare: unary('Prepare', async (r: { key: string; parent: string; labels: Record<string, string> }) => ({ mounts: toProtoMounts(await sn.prepare(r.key, r.parent, r.labels ?? {})) })),
    View: unary('View', async (r: { key: string; parent: string; labels: Record<string, string> }) => ({ mounts: toProtoMounts(await sn.view(r.key, r.parent, r.labels ?? {})) })),
    Mounts: unary('Mounts', async (r: { key: string }) => ({ mounts: toProtoMounts(await sn.mounts(r.key)) })),
    Commit: unary('Commit', async (r: { name: string; key: string; labels: Record<string, string> }) => {
      await sn.commit(r.name, r.key, r.labels ?? {});
      return empty;
    }),
    Remove: unary('Remove', async (r: { key: string }) => {
      await sn.remove(r.key);
      return empty;
    }),
    Stat: unary('Stat', async (r: { key: string }) => ({ info: toProtoInfo(await sn.stat(r.key)) })),
    Update: unary('Update', async (r: { info: ProtoInfo | null; update_mask: { paths: string[] } | null }) => ({
      info: toProtoInfo(await sn.update({ name: r.info?.name ?? '', labels: r.info?.labels ?? {} }, r.update_mask?.paths ?? [])),
    })),
    Usage: unary('Usage', async (r: { key: string }) => sn.usage(r.key)),
    Cleanup: unary('Cleanup', async () => {
      await sn.cleanup();
      return empty;
    }),
    List: (call: grpc.ServerWritableStream<{ filters: string[] }, { info: ProtoInfo[] }>) => {
      sn.list(call.request.filters ?? []).then(
        (infos) => {
          for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH).map(toProtoInfo) });
          call.end();
        },
        (err: unknown) => {
          logger.warn('snapshots rpc failed', { rpc: 'List', error: (err as Error).message });
          call.destroy(toServiceError(err) as grpc.ServiceError);
        },
      );
    },
  };
}

export interface SnapshotsServer {
  /** The unix socket path. */
  address: string;
  /** Stops accepting calls and waits for running ones (up to `graceMs`, default 10 s). */
  close(graceMs?: number): Promise<void>;
}

export interface ServeSnapshotterOptions {
  /** Unix socket path (a stale socket file is replaced). */
  address: string;
  snapshotter: Snapshotter;
  logger?: Logger;
}

/** Serves `snapshotter` on a unix socket as containerd's proxy snapshotter plugin expects. */
export async function serveSnapshotter(options: ServeSnapshotterOptions): Promise<SnapshotsServer> {
  const address = path.resolve(options.address);
  await mkdir(path.dirname(address), { recursive: true });
  if (existsSync(address)) await rm(address, { force: true });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 << 20, 'grpc.max_send_message_length': 16 << 20 });
  server.addService(containerdService(SNAPSHOTS_SERVICE).service, snapshotsServiceHandlers(options.snapshotter, options.logger));
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  return {
    address,
    async close(graceMs = 10_000) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await rm(address, { force: true });
    },
  };
}
