/**
 * containerd's gRPC API as this package writes it (proto/containerd/**: containerd 1.6's package,
 * service, message and field names and numbers, checked against containerd's own .proto files by
 * a test), loaded at run time with @grpc/proto-loader.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The .proto files of this package, relative to {@link protoRoot}. */
export const CONTAINERD_PROTO_FILES = [
  'containerd/types/mount.proto',
  'containerd/types/descriptor.proto',
  'containerd/services/snapshots/v1/snapshots.proto',
  'containerd/services/content/v1/content.proto',
  'containerd/services/leases/v1/leases.proto',
  'containerd/services/images/v1/images.proto',
  'containerd/services/diff/v1/diff.proto',
] as const;

/**
 * Directory holding proto/containerd/**. Found through the package's own name, so it also works
 * from an application bundle (which lives elsewhere but resolves the workspace package).
 */
export function protoRoot(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@nydus-ts/snapshotter/package.json')), 'proto');
}

/**
 * snake_case field names as on the wire (`created_at`, `update_mask`), int64 as JS numbers
 * (sizes and offsets stay far below 2^53), enums as their names, defaults filled in.
 */
const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

let loaded: grpc.GrpcObject | undefined;

/** The loaded API (memoised): `api.containerd.services.snapshots.v1.Snapshots` and so on. */
export function loadContainerdApi(): grpc.GrpcObject {
  if (!loaded) {
    const definition = protoLoader.loadSync([...CONTAINERD_PROTO_FILES], { ...loaderOptions, includeDirs: [protoRoot()] });
    loaded = grpc.loadPackageDefinition(definition);
  }
  return loaded;
}

/** A service constructor by its full name, e.g. `containerd.services.snapshots.v1.Snapshots`. */
export function containerdService(fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = loadContainerdApi();
  for (const part of fullName.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`no gRPC service ${fullName} in the containerd protos`);
  return node as grpc.ServiceClientConstructor;
}

export const SNAPSHOTS_SERVICE = 'containerd.services.snapshots.v1.Snapshots';
export const CONTENT_SERVICE = 'containerd.services.content.v1.Content';
export const LEASES_SERVICE = 'containerd.services.leases.v1.Leases';
export const IMAGES_SERVICE = 'containerd.services.images.v1.Images';
export const DIFF_SERVICE = 'containerd.services.diff.v1.Diff';

/** google.protobuf.Timestamp as proto-loader hands it over (with `longs: Number`). */
export interface ProtoTimestamp {
  seconds: number;
  nanos: number;
}

/** Microseconds since the epoch ↔ Timestamp. */
export function toProtoTimestamp(micros: number): ProtoTimestamp {
  const seconds = Math.floor(micros / 1e6);
  return { seconds, nanos: (micros - seconds * 1e6) * 1000 };
}

export function fromProtoTimestamp(ts: ProtoTimestamp | null | undefined): number {
  if (!ts) return 0;
  return Number(ts.seconds) * 1e6 + Math.floor(Number(ts.nanos) / 1000);
}
