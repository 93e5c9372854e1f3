/** Snapshot kinds as containerd's snapshots API names them (`Kind` enum, UNKNOWN never stored). */
export type SnapshotKind = 'VIEW' | 'ACTIVE' | 'COMMITTED';

/** What `Stat`, `List` and `Update` return (containerd's `snapshots.Info`). */
export interface SnapshotInfo {
  /** The key of an active or view snapshot, the name of a committed one. */
  name: string;
  /** Name of the committed parent; empty for a base snapshot. */
  parent: string;
  kind: SnapshotKind;
  /** Microseconds since the epoch. */
  created: number;
  /** Microseconds since the epoch; strictly increases with every change. */
  updated: number;
  labels: Record<string, string>;
}

/** One mount the runc shim performs (`containerd.types.Mount`; containerd ignores `target`). */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** Disk use of a snapshot's own layer, as containerd's `fs.DiskUsage` counts it. */
export interface SnapshotUsage {
  /** Bytes of allocated blocks (st_blocks × 512), hardlinks counted once. */
  size: number;
  inodes: number;
}

/**
 * containerd's Snapshotter contract (core/snapshots/snapshotter.go): keys are opaque strings,
 * only committed snapshots can be parents, a committed snapshot's labels come from its Commit.
 * Errors are NydusErrors whose codes map onto the gRPC codes containerd branches on:
 * NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT.
 */
export interface Snapshotter {
  prepare(key: string, parent: string, labels?: Record<string, string>): Promise<Mount[]>;
  view(key: string, parent: string, labels?: Record<string, string>): Promise<Mount[]>;
  mounts(key: string): Promise<Mount[]>;
  commit(name: string, key: string, labels?: Record<string, string>): Promise<void>;
  remove(key: string): Promise<void>;
  stat(key: string): Promise<SnapshotInfo>;
  /** `fieldPaths`: `labels` or `labels.<key>`; none means every mutable field (the labels). */
  update(info: Pick<SnapshotInfo, 'name' | 'labels'>, fieldPaths?: string[]): Promise<SnapshotInfo>;
  /** Every snapshot matching any of the containerd filter expressions (all without filters). */
  list(filters?: string[]): Promise<SnapshotInfo[]>;
  usage(key: string): Promise<SnapshotUsage>;
  /** Frees what no snapshot uses any more (directories, mounts, cache files). */
  cleanup(): Promise<void>;
  close(): Promise<void>;
}
