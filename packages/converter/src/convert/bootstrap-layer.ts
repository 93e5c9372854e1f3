import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { FormatError, NydusError } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import type { LayerEntry } from '@nydus-ts/format';
import { decompressStream, readTarEntries, writeTarEntries } from '@nydus-ts/image';
import { BOOTSTRAP_PATH_IN_LAYER, LEGACY_BOOTSTRAP_PATH_IN_LAYER, blobMetaPathInLayer } from './nydus-conventions.js';

/** The bootstrap layer, packed: gzip'd tar bytes and their digests. */
export interface PackedBootstrapLayer {
  /** The gzip'd tar (what is pushed). */
  bytes: Buffer;
  digest: Digest;
  size: number;
  /** sha256 of the uncompressed tar (the config's last `diff_id`). */
  diffId: Digest;
}

/** Fixed mtime of bootstrap layer entries, so equal input gives equal bytes. */
const BOOTSTRAP_LAYER_MTIME = 0;

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Packs the bootstrap layer of spec §5.4: a tar of `image/` (0755), `image/image.boot` (0444) and
 * one `image/<blob-id>.blob.meta` (0444) per blob with data, gzip'd without name or mtime.
 * Deterministic: the same bootstrap and metas give the same digest.
 */
export async function packBootstrapLayer(bootstrap: Uint8Array, blobMetas: ReadonlyArray<{ blobId: string; meta: Uint8Array }>): Promise<PackedBootstrapLayer> {
  const base = { uid: 0, gid: 0, mtime: BOOTSTRAP_LAYER_MTIME } as const;
  const fileEntry = (path: string, data: Uint8Array): LayerEntry => ({
    ...base,
    path,
    type: 'file',
    mode: 0o444,
    size: data.length,
    content: (async function* () {
      if (data.length > 0) yield data;
    })(),
  });
  const entries: LayerEntry[] = [
    { ...base, path: 'image', type: 'directory', mode: 0o755, size: 0 },
    fileEntry(BOOTSTRAP_PATH_IN_LAYER, bootstrap),
    ...blobMetas.map((m) => fileEntry(blobMetaPathInLayer(m.blobId), m.meta)),
  ];
  const parts: Uint8Array[] = [];
  for await (const chunk of writeTarEntries((async function* () { yield* entries; })())) parts.push(chunk);
  const tar = Buffer.concat(parts);
  // Node's gzip header has no file name and mtime 0: the bytes depend on the content only.
  const bytes = gzipSync(tar, { level: 6 });
  return { bytes, digest: sha256(bytes), size: bytes.length, diffId: sha256(tar) };
}

/** What a bootstrap layer holds. */
export interface BootstrapLayerContent {
  bootstrap: Uint8Array;
  /** `<blob-id>.blob.meta` files by blob id. */
  blobMetas: Map<string, Uint8Array>;
}

/**
 * Reads a bootstrap layer (gzip'd or plain tar): `image/image.boot` (or the legacy `image.boot`)
 * and the blob meta files. At most `maxBytes` per file are buffered.
 */
export async function readBootstrapLayer(data: AsyncIterable<Uint8Array>, options: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<BootstrapLayerContent> {
  const max = options.maxBytes ?? 1 << 30;
  let bootstrap: Uint8Array | undefined;
  const blobMetas = new Map<string, Uint8Array>();
  for await (const entry of readTarEntries(decompressStream(data, options.signal ? { signal: options.signal } : {}), options.signal ? { signal: options.signal } : {})) {
    if (entry.type !== 'file') continue;
    const isBoot = entry.path === BOOTSTRAP_PATH_IN_LAYER || entry.path === LEGACY_BOOTSTRAP_PATH_IN_LAYER;
    const meta = /^image\/([0-9a-f]{64})\.blob\.meta$/.exec(entry.path);
    if (!isBoot && !meta) continue;
    if (entry.size > max) throw new NydusError('RESOURCE_EXHAUSTED', `bootstrap layer: ${entry.path} is ${entry.size} bytes, more than ${max}`);
    const parts: Uint8Array[] = [];
    for await (const c of entry.content ?? []) parts.push(c);
    const bytes = Buffer.concat(parts);
    if (isBoot) bootstrap = bytes;
    else blobMetas.set(meta![1]!, bytes);
  }
  if (!bootstrap) throw new FormatError('bootstrap layer', `has no ${BOOTSTRAP_PATH_IN_LAYER}`);
  return { bootstrap, blobMetas };
}
