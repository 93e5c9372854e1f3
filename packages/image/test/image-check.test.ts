// `image check --blob-dir` verifies whole blobs (issue 9): a byte flipped anywhere in a blob,
// its metadata tail included (chunk-info array, CCT header, digest array, ToC, tar headers),
// fails the check; the reference fixture, whose blob id is not its file's sha256, still passes.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isNydusError } from '@nydus-ts/core';
import { bufferSource, walkBlobTail } from '@nydus-ts/format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImage, createImage } from '../src/index.js';

const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));

let work: string;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'nydus-image-check-'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Positions to flip: every byte of each tail header and section edge, and a stride through the rest. */
async function positions(blob: Buffer): Promise<number[]> {
  const at = new Set<number>();
  const sections = await walkBlobTail(bufferSource(blob));
  expect(sections.map((s) => s.name)).toEqual(['image.blob', 'blob.meta', 'blob.digest', 'rafs.blob.toc']);
  for (const s of sections) {
    for (let i = 0; i < 512; i += 13) at.add(s.headerOffset + i);
    for (let i = 0; i < Math.min(8, s.size); i++) at.add(s.offset + i).add(s.offset + s.size - 1 - i);
    const stride = s.name === 'image.blob' ? 499 : 37;
    for (let i = 0; i < s.size; i += stride) at.add(s.offset + i);
  }
  return [...at].filter((p) => p >= 0 && p < blob.length).sort((a, b) => a - b);
}

describe('image check --blob-dir verifies whole blobs', () => {
  it.each(['zstd', 'none'] as const)('a byte flipped anywhere in a %s blob fails the check', async (compressor) => {
    const src = path.join(work, `src-${compressor}`);
    await mkdir(path.join(src, 'd'), { recursive: true });
    for (let i = 0; i < 6; i++) await writeFile(path.join(src, 'd', `f${i}`), Buffer.alloc(3000 + i * 1500, `content ${i} `));
    const bootstrap = path.join(work, `${compressor}.boot`);
    const blobDir = path.join(work, `${compressor}-blobs`);
    const built = await createImage({ type: 'dir-rafs', source: src, bootstrap, blobDir, compressor, chunkSize: 4096 });
    const intact = await checkImage({ bootstrap, blobDir });
    expect(intact.blobs).toEqual([
      expect.objectContaining({ id: built.blob!.id, idIsSha256: true, tocSections: ['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest'], chunksVerified: built.blob!.chunkCount }),
    ]);

    const blob = await readFile(built.blob!.path);
    const flips = await positions(blob);
    expect(flips.length).toBeGreaterThan(200);
    const passed: number[] = [];
    for (const p of flips) {
      const bad = Buffer.from(blob);
      bad[p] ^= 0x01;
      await writeFile(built.blob!.path, bad);
      const err = await checkImage({ bootstrap, blobDir }).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!isNydusError(err)) passed.push(p);
    }
    await writeFile(built.blob!.path, blob);
    expect(passed, `flipped bytes that passed the check (of ${blob.length})`).toEqual([]);
  });

  it('checks a reference-tool blob whose id is not its sha256 section by section; a flipped byte still fails', async () => {
    const id = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
    const blobDir = path.join(work, 'fixture-blobs');
    await mkdir(blobDir);
    await copyFile(path.join(fixtures, id), path.join(blobDir, id));
    const bootstrap = path.join(fixtures, 'rafs-v6-2.2.boot');
    const r = await checkImage({ bootstrap, blobDir });
    expect(r.blobs).toEqual([expect.objectContaining({ id, idIsSha256: false, tocSections: ['image.blob', 'blob.meta', 'blob.meta.header', 'blob.digest'], chunksVerified: 2 })]);
    const blob = await readFile(path.join(blobDir, id));
    const sections = await walkBlobTail(bufferSource(blob));
    for (const s of sections) {
      for (const p of [s.offset, s.offset + Math.floor(s.size / 2), s.headerOffset + 100]) {
        const bad = Buffer.from(blob);
        bad[p] ^= 0x80;
        await writeFile(path.join(blobDir, id), bad);
        expect(isNydusError(await checkImage({ bootstrap, blobDir }).catch((e: unknown) => e)), `${s.name} at ${p}`).toBe(true);
      }
    }
  });
});
