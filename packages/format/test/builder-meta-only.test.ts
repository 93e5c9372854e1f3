import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BootstrapReader, buildLayer, bufferSource, extractBlobSection, readBlobToc, walkBlobTail, type LayerEntry } from '../src/index.js';

const dirEntry = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0 });
const emptyFile = (path: string): LayerEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, size: 0, content: (async function* () {})() });

async function build(entries: LayerEntry[], inlineBootstrap: boolean) {
  const written: Uint8Array[] = [];
  const result = await buildLayer((async function* () { yield* entries; })(), { write: async (b) => void written.push(b.slice()) }, { inlineBootstrap });
  return { result, blob: Buffer.concat(written) };
}

describe('a layer without file data', () => {
  const entries = [dirEntry(''), dirEntry('etc'), emptyFile('etc/.wh.passwd'), emptyFile('empty')];

  it('writes nothing without an inlined bootstrap', async () => {
    const { result, blob } = await build(entries, false);
    expect(result.blob).toBeNull();
    expect(blob.length).toBe(0);
    expect((await BootstrapReader.open(result.bootstrap)).blobs).toEqual([]);
  });

  it('with an inlined bootstrap gets a blob of its bootstrap and ToC only, named by its sha256', async () => {
    const { result, blob } = await build(entries, true);
    expect(result.blob).toMatchObject({ chunkCount: 0, size: blob.length, uncompressedSize: 0 });
    expect(result.blob!.id).toBe(createHash('sha256').update(blob).digest('hex'));
    expect(result.blobMeta).toBeNull();
    const source = bufferSource(blob);
    expect((await walkBlobTail(source)).map((s) => s.name)).toEqual(['image.boot', 'rafs.blob.toc']);
    const toc = await readBlobToc(source);
    expect(toc.entries.map((e) => e.name)).toEqual(['image.boot']);
    const inlined = await extractBlobSection(source, toc, 'image.boot');
    expect(Buffer.from(inlined)).toEqual(Buffer.from(result.bootstrap));
    const reader = await BootstrapReader.open(inlined);
    expect(reader.blobs).toEqual([]);
    expect([...reader.walk()].map((e) => e.path)).toEqual(['/', '/empty', '/etc', '/etc/.wh.passwd']);
  });
});
