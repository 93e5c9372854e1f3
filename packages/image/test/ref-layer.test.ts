import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { zstdFrame as zstdCompress } from '@nydus-ts/testing';
import { DigestMismatchError, isNydusError, type BlobBackend } from '@nydus-ts/core';
import { BlobFeatures, BootstrapReader, RafsFileReader, attachRefBlobMetas, bufferSource, mergeBootstraps, walkBlobTail } from '@nydus-ts/format';
import { describe, expect, it } from 'vitest';
import { RefLayerUnsupportedError, buildRefLayerFromStream } from '../src/layer/ref-layer.js';
import { checkImage, unpackImage } from '../src/index.js';

const run = promisify(execFile);
const fixtures = new URL('../../../testdata/nydus-upstream/', import.meta.url);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function* pieces(bytes: Uint8Array, size = 65536): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
async function* stream(bytes: Uint8Array, size?: number): AsyncGenerator<Uint8Array> {
  yield* pieces(bytes, size);
}

/** A backend over blobs in memory, counting bytes read per blob. */
class MemoryBackend implements BlobBackend {
  readonly read = new Map<string, number>();
  constructor(readonly blobs: Map<string, Uint8Array>) {}
  async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    const b = this.blobs.get(blobId);
    if (b === undefined) throw new Error(`no blob ${blobId}`);
    this.read.set(blobId, (this.read.get(blobId) ?? 0) + length);
    return b.subarray(offset, offset + length);
  }
}

/** Converts one original layer to a reference image (layer bootstrap merged alone). */
async function convertLayer(original: Uint8Array, options: { chunkSize?: number; inputPiece?: number } = {}) {
  const digest = sha256(original);
  const written: Uint8Array[] = [];
  const layer = await buildRefLayerFromStream(stream(original, options.inputPiece), { write: async (b) => void written.push(Buffer.from(b)) }, {
    blobId: `sha256:${digest}`,
    sourceSize: original.length,
    ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
  });
  const meta = Buffer.concat(written);
  expect(sha256(meta)).toBe(layer.metaBlob.id);
  expect(meta.length).toBe(layer.metaBlob.size);
  const merged = await mergeBootstraps([{ bootstrap: layer.bootstrap, blobId: digest, blobMeta: { digest: layer.metaBlob.id, size: meta.length } }]);
  const backend = new MemoryBackend(new Map([[digest, original], [layer.metaBlob.id, meta]]));
  const reader = await BootstrapReader.open(merged.bootstrap);
  await attachRefBlobMetas(reader, backend);
  return { digest, layer, meta, merged, reader, backend };
}

/** Compares every entry of the image with `tar -x` of the original. */
async function expectSameAsTar(reader: BootstrapReader, backend: BlobBackend, original: string): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'zran-x-'));
  try {
    await run('tar', ['-xf', original, '-C', dir, '--no-same-owner']);
    const files = new RafsFileReader(reader, backend);
    let compared = 0;
    for (const { path: p, nid, inode } of reader.walk()) {
      if (p === '/') continue;
      const onDisk = path.join(dir, p);
      const st = await lstat(onDisk);
      if (inode.type === 'file') {
        expect(st.isFile(), p).toBe(true);
        const want = await readFile(onDisk);
        const got = Buffer.from(await files.read(nid, 0, inode.size));
        expect(got.length, p).toBe(want.length);
        expect(got.equals(want), p).toBe(true);
        compared++;
      } else if (inode.type === 'symlink') {
        expect(Buffer.from(reader.readlink(nid)).toString(), p).toBe(await readlink(onDisk));
      } else if (inode.type === 'directory') {
        expect(st.isDirectory(), p).toBe(true);
      }
    }
    return compared;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('targz-ref layers of the reference fixtures', () => {
  for (const name of ['zran-single-stream.tar.gz', 'zran-two-streams.tar.gz', 'zran-zero-file.tar.gz', 'bgzip.tar.gz']) {
    it(`${name}: reads back byte-identical to tar -x`, async () => {
      const file = new URL(name, fixtures).pathname;
      const original = await readFile(file);
      for (const chunkSize of [0x1000, 0x100000]) {
        const { digest, layer, meta, merged, reader, backend } = await convertLayer(original, { chunkSize, inputPiece: 7000 });
        expect(layer.kind).toBe('zran');
        expect(merged.blobIds).toEqual(layer.chunkCount > 0 ? [digest] : []);
        if (layer.chunkCount > 0) {
          const blob = reader.blobs[0]!;
          expect(blob.compressor).toBe('gzip');
          expect(blob.digester).toBe('sha256');
          // targz-ref features: 0x7000_003F per layer, INLINED_FS_META cleared by merge (spec §1.5).
          expect(blob.features >>> 0).toBe(0x7000_003d);
          expect(blob.entry.metaDigest).toBe(layer.metaBlob.id);
          expect(blob.entry.compressedSize).toBe(original.length);
          expect(layer.contexts).toBeGreaterThan(0);
          const perLayer = await BootstrapReader.open(layer.bootstrap);
          expect(perLayer.blobs[0]!.features >>> 0).toBe(0x7000_003f);
        }
        // The meta blob is the tail-readable tar-like packing of spec §4.2.
        const names = (await walkBlobTail(bufferSource(meta))).map((s) => s.name).sort();
        expect(names).toEqual(layer.chunkCount > 0 ? ['blob.digest', 'blob.meta', 'image.boot', 'rafs.blob.toc'] : ['image.boot', 'rafs.blob.toc']);
        const compared = await expectSameAsTar(reader, backend, file);
        expect(compared).toBeGreaterThan(0);
      }
    });
  }
});

describe('reference layers', () => {
  it('a plain tar becomes a tar-ref layer whose chunks point into the tar itself', async () => {
    const file = new URL('all-entry-type.tar', fixtures).pathname;
    const original = await readFile(file);
    const { layer, reader, backend, digest } = await convertLayer(original);
    expect(layer.kind).toBe('tar');
    expect(reader.blobs[0]!.features & BlobFeatures.ZRAN).toBe(0);
    expect(reader.blobs[0]!.features & BlobFeatures.SEPARATE).not.toBe(0);
    await expectSameAsTar(reader, backend, file);
    // Reads are plain ranges of the tar: no more than the file data itself.
    expect(backend.read.get(digest)).toBeLessThanOrEqual(original.length);
  });

  it('a zstd layer is refused before anything is written, so the caller converts it natively', async () => {
    const tar = await readFile(new URL('all-entry-type.tar', fixtures));
    const zst = zstdCompress(tar);
    const writes: Uint8Array[] = [];
    const err = await buildRefLayerFromStream(stream(zst), { write: async (b) => void writes.push(b) }, { blobId: sha256(zst), sourceSize: zst.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefLayerUnsupportedError);
    expect(writes).toEqual([]);
  });

  it('a layer whose bytes do not match its digest is refused', async () => {
    const original = await readFile(new URL('zran-two-streams.tar.gz', fixtures));
    const writes: Uint8Array[] = [];
    const err = await buildRefLayerFromStream(stream(original), { write: async (b) => void writes.push(b) }, { blobId: 'ab'.repeat(32), sourceSize: original.length }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect(writes).toEqual([]);
  });

  it('corrupt bytes in the original layer fail the chunks they are in, and only those', async () => {
    const file = new URL('bgzip.tar.gz', fixtures).pathname;
    const original = Buffer.from(await readFile(file));
    const { digest, reader, meta, layer } = await convertLayer(original, { chunkSize: 0x1000 });
    const corrupt = Buffer.from(original);
    const at = Math.floor(corrupt.length / 2);
    for (let i = 0; i < 64; i++) corrupt[at + i] ^= 0xa5;
    const files = new RafsFileReader(reader, new MemoryBackend(new Map([[digest, corrupt], [layer.metaBlob.id, meta]])));
    const meta0 = reader.blobMeta(0)!;
    let failed = 0;
    let ok = 0;
    for (const { nid, inode } of reader.walk()) {
      if (inode.type !== 'file') continue;
      for (const ref of reader.chunks(nid)) {
        const ctx = meta0.zranContexts[ref.zranContextIndex!]!;
        const touched = ctx.inOffset < at + 64 && at < ctx.inOffset + ctx.inLen;
        const outcome = await files.readChunk(ref).then(
          () => 'ok',
          (e: unknown) => (isNydusError(e) ? e.code : 'other'),
        );
        if (!touched) expect(outcome).toBe('ok');
        if (outcome === 'ok') ok++;
        else {
          expect(['INVALID_FORMAT', 'DATA_LOSS']).toContain(outcome);
          failed++;
        }
      }
    }
    expect(failed).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(failed);
  });

  it('image check and image unpack read a zran image from a blob dir holding the original and its meta blob', async () => {
    const file = new URL('zran-two-streams.tar.gz', fixtures).pathname;
    const original = await readFile(file);
    const { digest, layer, meta, merged } = await convertLayer(original);
    const dir = await mkdtemp(path.join(tmpdir(), 'zran-local-'));
    try {
      const blobs = path.join(dir, 'blobs');
      await mkdir(blobs);
      await writeFile(path.join(blobs, digest), original);
      await writeFile(path.join(blobs, layer.metaBlob.id), meta);
      const boot = path.join(dir, 'image.boot');
      await writeFile(boot, merged.bootstrap);
      const checked = await checkImage({ bootstrap: boot, blobDir: blobs });
      expect(checked.chunksVerified).toBe(layer.chunkCount);
      const out = path.join(dir, 'out.tar');
      await unpackImage({ bootstrap: boot, blobDir: blobs, output: out });
      const x = path.join(dir, 'x');
      await mkdir(x);
      await run('tar', ['-xf', out, '-C', x]);
      const y = path.join(dir, 'y');
      await mkdir(y);
      await run('tar', ['-xzf', file, '-C', y]);
      const diff = await run('diff', ['-r', x, y]).then(() => '', (e: { stdout?: string }) => e.stdout ?? 'differs');
      expect(diff).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a mutated or truncated meta blob is refused when attached', async () => {
    const original = await readFile(new URL('zran-single-stream.tar.gz', fixtures));
    const { digest, layer, meta, merged } = await convertLayer(original);
    for (const bad of [meta.subarray(0, meta.length - 1), Buffer.from(meta).fill(7, 100, 101)]) {
      const reader = await BootstrapReader.open(merged.bootstrap);
      const err = await attachRefBlobMetas(reader, new MemoryBackend(new Map([[digest, original], [layer.metaBlob.id, bad]]))).catch((e: unknown) => e);
      expect(isNydusError(err) && err.code).toBe('DATA_LOSS');
    }
  });
});
