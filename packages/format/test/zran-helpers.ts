// A targz-ref image made with the format and native APIs alone (no tar parser): files laid
// out in a pseudo-tar stream (512-byte gaps standing for headers), gzip'd in two members,
// inflated with checkpoints into a ZranIndexBuilder, built and merged alone.
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { CheckpointingGunzip } from '@nydus-ts/native';
import { BootstrapReader, ZranIndexBuilder, buildRefLayer, mergeBootstraps, type LayerEntry, type RefLayerBuildResult } from '../src/index.js';
import { pseudoRandomBytes } from './reader-helpers.js';

export interface ZranTestImage {
  original: Buffer;
  digest: string;
  layer: RefLayerBuildResult;
  meta: Buffer;
  merged: Uint8Array;
  files: Map<string, Uint8Array>;
}

/** Inflates `gz` whole, feeding every checkpoint and step end to `index`. */
export function inflateIndexed(gz: Uint8Array, index: ZranIndexBuilder, step = 50_000): Buffer {
  const g = new CheckpointingGunzip({ maxCheckpointsPerStep: 8 });
  const out: Buffer[] = [];
  let input = Buffer.from(gz);
  let totalIn = 0;
  let totalOut = 0;
  for (;;) {
    const o = Buffer.alloc(step);
    const r = g.step(input, o);
    out.push(o.subarray(0, r.produced));
    input = input.subarray(r.consumed);
    totalIn += r.consumed;
    totalOut += r.produced;
    for (const c of r.checkpoints) index.addCheckpoint(c);
    index.addProgress(totalIn, totalOut);
    if (r.status === 'member-end') {
      if (input.length === 0) break;
      g.nextMember();
    } else if (r.status === 'need-input' && input.length === 0) throw new Error('truncated test stream');
  }
  return Buffer.concat(out);
}

export async function makeZranImage(options: { fileSizes: number[]; chunkSize: number; duplicate?: boolean }): Promise<ZranTestImage> {
  const files = new Map<string, Uint8Array>();
  const parts: Uint8Array[] = [];
  const offsets = new Map<string, number>();
  let at = 0;
  options.fileSizes.forEach((size, i) => {
    const data = pseudoRandomBytes(size, i + 1, i % 2 === 0);
    const name = `f${i}`;
    files.set(name, data);
    parts.push(new Uint8Array(512), data);
    at += 512;
    offsets.set(name, at);
    at += data.length;
  });
  if (options.duplicate) {
    const first = [...files.values()].find((d) => d.length > 0)!;
    files.set('dup', first);
    parts.push(new Uint8Array(512), first);
    at += 512;
    offsets.set('dup', at);
    at += first.length;
  }
  const plain = Buffer.concat(parts);
  const cut = plain.length >> 1;
  const original = Buffer.concat([gzipSync(plain.subarray(0, cut)), gzipSync(plain.subarray(cut))]);
  const digest = createHash('sha256').update(original).digest('hex');
  const index = new ZranIndexBuilder();
  const inflated = inflateIndexed(original, index);
  async function* entries(): AsyncGenerator<LayerEntry> {
    yield { path: '', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0 };
    for (const [name, data] of files) {
      const offset = offsets.get(name)!;
      yield {
        path: name,
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        size: data.length,
        dataOffset: offset,
        content: (async function* () {
          yield inflated.subarray(offset, offset + data.length);
        })(),
      };
    }
  }
  const written: Uint8Array[] = [];
  const layer = await buildRefLayer(entries(), { write: async (b) => void written.push(Buffer.from(b)) }, { blobId: digest, sourceSize: original.length, locator: index, chunkSize: options.chunkSize });
  const meta = Buffer.concat(written);
  const merged = (await mergeBootstraps([{ bootstrap: layer.bootstrap, blobId: digest, blobMeta: { digest: layer.metaBlob.id, size: meta.length } }])).bootstrap;
  await BootstrapReader.open(merged);
  return { original, digest, layer, meta, merged, files };
}
