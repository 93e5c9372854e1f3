/**
 * Snapshot metadata in SQLite (better-sqlite3), with the semantics of containerd's bolt store
 * (core/snapshots/storage/bolt.go): opaque keys, kinds, committed parents only, labels, stored
 * usage of committed snapshots, and the errors containerd expects. Every change is one
 * transaction, so a process killed at any instant leaves either the old or the new state;
 * directory changes that must go with a row run inside the same transaction (see snapshotter.ts).
 */
import Database from 'better-sqlite3';
import { InvalidArgumentError, NotFoundError, NydusError } from '@nydus-ts/core';
import type { SnapshotKind, SnapshotInfo, SnapshotUsage } from './types.js';
import { MAX_LABEL_BYTES } from './labels.js';

/** A snapshot row: its info plus the id that names its directory. */
export interface SnapshotRecord extends SnapshotInfo {
  id: number;
  parentId: number | null;
  /** Usage recorded at commit (committed snapshots only). */
  usage: SnapshotUsage;
}

/** A nydusd-ts process this snapshotter started (it outlives the snapshotter). */
export interface DaemonRecord {
  id: string;
  mode: 'shared' | 'dedicated';
  pid: number;
  apiSocket: string;
  /** Shared: the root under which instances appear; dedicated: the image's mountpoint. */
  mountpoint: string;
  /** Dedicated daemons: the command-line arguments after the binary, to restart it as it was. */
  args: string[];
}

/** One image (its bootstrap snapshot) served by a daemon. */
export interface RafsInstanceRecord {
  snapshotId: number;
  daemonId: string;
  mountpoint: string;
  bootstrap: string;
  imageRef: string;
  /** Path of the nydusd config file written for this image. */
  configFile: string;
  /** Blob ids the bootstrap references: their cache files stay while the instance exists. */
  blobIds: string[];
}

interface SnapshotRow {
  id: number;
  key: string;
  parent_id: number | null;
  parent_key: string | null;
  kind: SnapshotKind;
  created_at: number;
  updated_at: number;
  labels: string;
  size: number;
  inodes: number;
}

const schema = `
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
  kind TEXT NOT NULL CHECK (kind IN ('VIEW', 'ACTIVE', 'COMMITTED')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  labels TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  inodes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
CREATE TABLE IF NOT EXISTS daemons (
  id TEXT PRIMARY KEY,
  mode TEXT NOT NULL CHECK (mode IN ('shared', 'dedicated')),
  pid INTEGER NOT NULL,
  api_socket TEXT NOT NULL,
  mountpoint TEXT NOT NULL,
  args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rafs_instances (
  snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE RESTRICT,
  daemon_id TEXT NOT NULL REFERENCES daemons(id) ON DELETE RESTRICT,
  mountpoint TEXT NOT NULL,
  bootstrap TEXT NOT NULL,
  image_ref TEXT NOT NULL,
  config_file TEXT NOT NULL,
  blob_ids TEXT NOT NULL
);
`;

const selectSnapshot = `SELECT s.*, p.key AS parent_key FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

function validateLabels(labels: Record<string, string>): void {
  for (const [k, v] of Object.entries(labels)) {
    if (k === '') throw new InvalidArgumentError('label key must not be empty');
    if (Buffer.byteLength(k) + Buffer.byteLength(v) > MAX_LABEL_BYTES) {
      throw new InvalidArgumentError(`label ${JSON.stringify(k.slice(0, 64))}: key and value exceed ${MAX_LABEL_BYTES} bytes`);
    }
  }
}

function toRecord(row: SnapshotRow): SnapshotRecord {
  return {
    id: row.id,
    name: row.key,
    parent: row.parent_key ?? '',
    parentId: row.parent_id,
    kind: row.kind,
    created: row.created_at,
    updated: row.updated_at,
    labels: JSON.parse(row.labels) as Record<string, string>,
    usage: { size: row.size, inodes: row.inodes },
  };
}

export class MetaStore {
  readonly #db: Database.Database;
  #lastMicros = 0;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Opens (creating if needed) the database file. WAL with full syncs: committed means durable. */
  static open(file: string): MetaStore {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.exec(schema);
    return new MetaStore(db);
  }

  close(): void {
    this.#db.close();
  }

  /** Runs `fn` in one transaction (nested calls join it); a throw rolls everything back. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  /** Strictly increasing microseconds since the epoch (never equal for two changes). */
  #now(): number {
    const now = Date.now() * 1000 + (Number(process.hrtime.bigint() / 1000n) % 1000);
    this.#lastMicros = Math.max(now, this.#lastMicros + 1);
    return this.#lastMicros;
  }

  get(key: string): SnapshotRecord | undefined {
    const row = this.#db.prepare(`${selectSnapshot} WHERE s.key = ?`).get(key) as SnapshotRow | undefined;
    return row && toRecord(row);
  }

  /** The snapshot of `key` or NOT_FOUND. */
  mustGet(key: string): SnapshotRecord {
    const rec = this.get(key);
    if (!rec) throw new NotFoundError(`snapshot ${JSON.stringify(key)} does not exist`);
    return rec;
  }

  getById(id: number): SnapshotRecord | undefined {
    const row = this.#db.prepare(`${selectSnapshot} WHERE s.id = ?`).get(id) as SnapshotRow | undefined;
    return row && toRecord(row);
  }

  /** The parents of a snapshot, nearest first. */
  ancestors(rec: SnapshotRecord): SnapshotRecord[] {
    const out: SnapshotRecord[] = [];
    let id = rec.parentId;
    while (id !== null) {
      const parent = this.getById(id);
      if (!parent) throw new NydusError('INTERNAL', `snapshot store: parent ${id} of ${JSON.stringify(rec.name)} is missing`);
      out.push(parent);
      id = parent.parentId;
    }
    return out;
  }

  list(): SnapshotRecord[] {
    return (this.#db.prepare(`${selectSnapshot} ORDER BY s.id`).all() as SnapshotRow[]).map(toRecord);
  }

  ids(): Set<number> {
    return new Set((this.#db.prepare('SELECT id FROM snapshots').all() as { id: number }[]).map((r) => r.id));
  }

  hasChildren(id: number): boolean {
    return this.#db.prepare('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').get(id) !== undefined;
  }

  /**
   * Creates an active or view snapshot (bolt.go CreateSnapshot). `withId` runs inside the same
   * transaction once the id is known (the caller moves the snapshot's directory into place
   * there); if it throws, nothing was created.
   */
  create(kind: 'ACTIVE' | 'VIEW', key: string, parentKey: string, labels: Record<string, string>, withId?: (id: number) => void): SnapshotRecord {
    if (key === '') throw new InvalidArgumentError('snapshot key must not be empty');
    validateLabels(labels);
    return this.transaction(() => {
      if (this.get(key)) throw new NydusError('ALREADY_EXISTS', `snapshot ${JSON.stringify(key)} already exists`);
      let parentId: number | null = null;
      if (parentKey !== '') {
        const parent = this.get(parentKey);
        if (!parent) throw new NotFoundError(`parent snapshot ${JSON.stringify(parentKey)} does not exist`);
        if (parent.kind !== 'COMMITTED') throw new InvalidArgumentError(`parent ${JSON.stringify(parentKey)} is not a committed snapshot`);
        parentId = parent.id;
      }
      const now = this.#now();
      const info = this.#db
        .prepare('INSERT INTO snapshots (key, parent_id, kind, created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?, ?)')
        .run(key, parentId, kind, now, now, JSON.stringify(labels));
      const id = Number(info.lastInsertRowid);
      withId?.(id);
      return this.getById(id)!;
    });
  }

  /**
   * Commits an active snapshot under `name` (bolt.go CommitActive): same id, kind COMMITTED,
   * labels replaced by `labels`, usage recorded.
   */
  commit(key: string, name: string, labels: Record<string, string>, usage: SnapshotUsage): SnapshotRecord {
    if (name === '') throw new InvalidArgumentError('committed snapshot name must not be empty');
    validateLabels(labels);
    return this.transaction(() => {
      const active = this.mustGet(key);
      if (this.get(name)) throw new NydusError('ALREADY_EXISTS', `snapshot ${JSON.stringify(name)} already exists`);
      if (active.kind !== 'ACTIVE') {
        throw new NydusError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} is ${active.kind.toLowerCase()}, not active: only active snapshots can be committed`);
      }
      const now = this.#now();
      this.#db
        .prepare("UPDATE snapshots SET key = ?, kind = 'COMMITTED', labels = ?, size = ?, inodes = ?, updated_at = ? WHERE id = ?")
        .run(name, JSON.stringify(labels), usage.size, usage.inodes, now, active.id);
      return this.getById(active.id)!;
    });
  }

  /**
   * Removes a snapshot's row (bolt.go Remove): FAILED_PRECONDITION while it has children or an
   * image instance. `beforeDelete` runs in the transaction.
   */
  remove(key: string, beforeDelete?: (rec: SnapshotRecord) => void): SnapshotRecord {
    return this.transaction(() => {
      const rec = this.mustGet(key);
      if (this.hasChildren(rec.id)) throw new NydusError('FAILED_PRECONDITION', `snapshot ${JSON.stringify(key)} has children: remove them first`);
      beforeDelete?.(rec);
      this.#db.prepare('DELETE FROM snapshots WHERE id = ?').run(rec.id);
      return rec;
    });
  }

  /** Replaces labels (all, or the `labels.<key>` paths given) of a snapshot (bolt.go UpdateInfo). */
  updateLabels(key: string, labels: Record<string, string>, fieldPaths: string[]): SnapshotRecord {
    return this.transaction(() => {
      const rec = this.mustGet(key);
      let next: Record<string, string>;
      if (fieldPaths.length === 0) {
        next = { ...labels };
      } else {
        next = { ...rec.labels };
        for (const path of fieldPaths) {
          if (path === 'labels') {
            next = { ...labels };
          } else if (path.startsWith('labels.')) {
            const k = path.slice('labels.'.length);
            const v = labels[k];
            if (v === undefined) delete next[k];
            else next[k] = v;
          } else {
            throw new InvalidArgumentError(`cannot update ${JSON.stringify(path)} of snapshot ${JSON.stringify(key)}: only labels are mutable`);
          }
        }
      }
      validateLabels(next);
      this.#db.prepare('UPDATE snapshots SET labels = ?, updated_at = ? WHERE id = ?').run(JSON.stringify(next), this.#now(), rec.id);
      return this.getById(rec.id)!;
    });
  }

  // --- daemons and image instances -------------------------------------------------------

  daemons(): DaemonRecord[] {
    const rows = this.#db.prepare('SELECT * FROM daemons ORDER BY id').all() as { id: string; mode: 'shared' | 'dedicated'; pid: number; api_socket: string; mountpoint: string; args: string }[];
    return rows.map((r) => ({ id: r.id, mode: r.mode, pid: r.pid, apiSocket: r.api_socket, mountpoint: r.mountpoint, args: JSON.parse(r.args) as string[] }));
  }

  daemon(id: string): DaemonRecord | undefined {
    return this.daemons().find((d) => d.id === id);
  }

  putDaemon(d: DaemonRecord): void {
    this.#db
      .prepare('INSERT INTO daemons (id, mode, pid, api_socket, mountpoint, args) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET mode = excluded.mode, pid = excluded.pid, api_socket = excluded.api_socket, mountpoint = excluded.mountpoint, args = excluded.args')
      .run(d.id, d.mode, d.pid, d.apiSocket, d.mountpoint, JSON.stringify(d.args));
  }

  deleteDaemon(id: string): void {
    this.#db.prepare('DELETE FROM daemons WHERE id = ?').run(id);
  }

  instances(): RafsInstanceRecord[] {
    const rows = this.#db.prepare('SELECT * FROM rafs_instances ORDER BY snapshot_id').all() as {
      snapshot_id: number;
      daemon_id: string;
      mountpoint: string;
      bootstrap: string;
      image_ref: string;
      config_file: string;
      blob_ids: string;
    }[];
    return rows.map((r) => ({
      snapshotId: r.snapshot_id,
      daemonId: r.daemon_id,
      mountpoint: r.mountpoint,
      bootstrap: r.bootstrap,
      imageRef: r.image_ref,
      configFile: r.config_file,
      blobIds: JSON.parse(r.blob_ids) as string[],
    }));
  }

  instance(snapshotId: number): RafsInstanceRecord | undefined {
    return this.instances().find((i) => i.snapshotId === snapshotId);
  }

  putInstance(i: RafsInstanceRecord): void {
    this.#db
      .prepare('INSERT OR REPLACE INTO rafs_instances (snapshot_id, daemon_id, mountpoint, bootstrap, image_ref, config_file, blob_ids) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(i.snapshotId, i.daemonId, i.mountpoint, i.bootstrap, i.imageRef, i.configFile, JSON.stringify(i.blobIds));
  }

  deleteInstance(snapshotId: number): void {
    this.#db.prepare('DELETE FROM rafs_instances WHERE snapshot_id = ?').run(snapshotId);
  }

  /** SQLite's own consistency check plus the foreign keys; empty when all is well. */
  integrityProblems(): string[] {
    const problems: string[] = [];
    for (const row of this.#db.pragma('integrity_check') as { integrity_check: string }[]) {
      if (row.integrity_check !== 'ok') problems.push(row.integrity_check);
    }
    for (const row of this.#db.pragma('foreign_key_check') as { table: string; rowid: number; parent: string }[]) {
      problems.push(`${row.table} row ${row.rowid} references a missing ${row.parent} row`);
    }
    return problems;
  }
}
