import { isNydusError } from '@nydus-ts/core';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlobFeatures, BootstrapReader, IMPLIED_DIRECTORY_XATTR, ChunkDict, RafsFileReader, bufferSource, extractBlobSection, mergeBootstraps, readBlobToc, type BuildLayerOptions, type LayerEntry } from '../src/index.js';
import { RafsSuperFlags, TocNames } from '../src/internal.js';
import { BootstrapView, E, build, prng, readFileFromBlob, type BuiltLayer } from './builder-helpers.js';

const run = promisify(execFile);

const work = mkdtempSync(join(tmpdir(), 'nydus-merge-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function layersOf(defs: Array<() => LayerEntry[]>, options: BuildLayerOptions = {}): Promise<BuiltLayer[]> {
  const out: BuiltLayer[] = [];
  for (const d of defs) out.push(await build(d, options));
  return out;
}

function blobMap(layers: BuiltLayer[]): Record<string, Uint8Array> {
  return Object.fromEntries(layers.filter((l) => l.blob).map((l) => [l.blob!.id, l.blobBytes]));
}

async function expectError(p: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isNydusError(err, code as never), `expected ${code}, got ${String(err)}`).toBe(true);
  for (const f of fragments) expect((err as Error).message).toContain(f);
}

/** path → [kind, content or target] of every node of a merged bootstrap. */
function treeOf(v: BootstrapView, blobs: Record<string, Uint8Array>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { path, nid } of v.walk()) {
    const ino = v.inode(nid);
    const type = ino.mode & 0o170000;
    if (type === 0o100000) out[path] = `file:${readFileFromBlob(v, nid, blobs).toString()}`;
    else if (type === 0o40000) out[path] = 'dir';
    else if (type === 0o120000) out[path] = `link:${Buffer.from(v.data(nid)).toString()}`;
    else out[path] = `special:${type.toString(8)}`;
  }
  return out;
}

describe('mergeBootstraps: OCI whiteouts and overwrites', () => {
  it('applies whiteouts, opaque directories and same-name replacement', async () => {
    const layers = await layersOf([
      () => [
        E.file('a/x', 'x0'),
        E.file('a/y', 'y0'),
        E.file('b/z', 'z0'),
        E.file('b/keep/deep', 'deep0'),
        E.file('c', 'c0'),
        E.file('.wh.lowest', ''),
        E.file('f', 'old f'),
        E.file('p', 'p was a file'),
        E.file('d/sub/leaf', 'leaf0'),
        E.dir('m', { mode: 0o700, uid: 1 }),
        E.file('m/lower', 'ml'),
      ],
      () => [
        E.file('a/.wh.x', ''),
        E.file('.wh.c', ''),
        E.file('b/.wh..wh..opq', ''),
        E.file('b/new', 'b-new'),
        E.file('f', 'new f'),
        E.file('p/q', 'p is a dir now'),
        E.symlink('d', 'p'),
        E.dir('m', { mode: 0o755, uid: 2 }),
        E.file('m/upper', 'mu'),
        E.file('.wh.not-there', ''),
      ],
    ]);
    const merged = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })));
    const v = new BootstrapView(merged.bootstrap);
    expect(treeOf(v, blobMap(layers))).toEqual({
      '/': 'dir',
      '/a': 'dir',
      '/a/y': 'file:y0',
      '/b': 'dir',
      '/b/new': 'file:b-new',
      '/d': 'link:p',
      '/f': 'file:new f',
      '/m': 'dir',
      '/m/lower': 'file:ml',
      '/m/upper': 'file:mu',
      '/p': 'dir',
      '/p/q': 'file:p is a dir now',
    });
    expect(v.inode(v.lookup('m'))).toMatchObject({ mode: 0o40755, uid: 2 });
    expect(v.sb.inodeCount).toBe(12);
    // Child directories of the root: a, b, m, p (d is now a symlink).
    expect(v.inode(128).nlink).toBe(2 + 4);
  });

  it('hides the whiteouts of the lowest layer too (OCI layer spec, containerd; unlike nydus-image merge)', async () => {
    const [l] = await layersOf([() => [E.file('.wh.gone', ''), E.file('d/.wh..wh..opq', ''), E.file('d/f', 'f'), E.file('d/e/.wh.x', '')]]);
    // The layer bootstrap keeps them (merge needs them); the merged one never shows them.
    expect(Object.keys(treeOf(new BootstrapView(l!.bootstrap), blobMap([l!])))).toContain('/.wh.gone');
    const v = new BootstrapView((await mergeBootstraps([{ bootstrap: l!.bootstrap }])).bootstrap);
    expect(Object.keys(treeOf(v, blobMap([l!])))).toEqual(['/', '/d', '/d/e', '/d/f']);
    // Also when the lowest of several layers holds them.
    const [upper] = await layersOf([() => [E.file('u', 'u')]]);
    const w = new BootstrapView((await mergeBootstraps([{ bootstrap: l!.bootstrap }, { bootstrap: upper!.bootstrap }])).bootstrap);
    expect(Object.keys(treeOf(w, blobMap([l!, upper!])))).toEqual(['/', '/d', '/d/e', '/d/f', '/u']);
  });

  it('drops a whole lower subtree under a file and a whited-out directory', async () => {
    const layers = await layersOf([
      () => [E.file('tree/a/b/c', 'c'), E.file('tree/a/d', 'd'), E.file('gone/x', 'x')],
      () => [E.file('tree', 'now a file'), E.file('.wh.gone', '')],
    ]);
    const merged = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })));
    const v = new BootstrapView(merged.bootstrap);
    expect(treeOf(v, blobMap(layers))).toEqual({ '/': 'dir', '/tree': 'file:now a file' });
    // Layer 0's blob is no longer referenced.
    expect(merged.blobIds).toEqual([layers[1]!.blob!.id]);
    expect(v.blobs.length).toBe(1);
  });
});

describe('mergeBootstraps: directories a layer implies without listing them', () => {
  const attrsOf = (v: BootstrapView, p: string) => {
    const ino = v.inode(p === '' ? v.sb.rootNid : v.lookup(p));
    return { mode: ino.mode, uid: ino.uid, gid: ino.gid, mtime: ino.mtime, xattrs: Object.fromEntries([...ino.xattrs].map(([k, x]) => [k, Buffer.from(x).toString()])) };
  };

  it('keep the lower directory and its attributes (containerd, umoci unpack); listed ones replace them', async () => {
    const layers = await layersOf([
      () => [
        E.dir('', { mode: 0o711, uid: 3, mtime: 1_500_000_000 }),
        E.dir('deep', { mode: 0o700, uid: 1, gid: 2, mtime: 1_600_000_000 }),
        E.dir('deep/d00', { mode: 0o750, mtime: 1_600_000_001, xattrs: { 'user.k': 'v' } }),
        E.file('deep/d00/d01/f', 'f'),
        E.dir('listed', { mode: 0o700, mtime: 1_600_000_002 }),
        E.file('was-a-file', 'x'),
      ],
      // No root, `deep` or `deep/d00` entry: they are only implied by the whiteout below them.
      () => [E.file('deep/d00/.wh.d01', ''), E.file('deep/d00/new', 'n'), E.dir('listed', { mode: 0o755, mtime: 1_700_000_000 }), E.file('listed/x', 'x'), E.file('was-a-file/y', 'y'), E.file('fresh/z', 'z')],
    ]);
    // The layer bootstrap marks what it implies: the root, deep, deep/d00, was-a-file, fresh.
    const upper = new BootstrapView(layers[1]!.bootstrap);
    for (const p of ['', 'deep', 'deep/d00', 'was-a-file', 'fresh']) {
      expect(attrsOf(upper, p), p).toEqual({ mode: 0o40755, uid: 0, gid: 0, mtime: 0, xattrs: { [IMPLIED_DIRECTORY_XATTR]: 'y' } });
    }
    expect(attrsOf(upper, 'listed').xattrs).toEqual({});

    const v = new BootstrapView((await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })))).bootstrap);
    expect(attrsOf(v, '')).toEqual({ mode: 0o40711, uid: 3, gid: 0, mtime: 1_500_000_000, xattrs: {} });
    expect(attrsOf(v, 'deep')).toEqual({ mode: 0o40700, uid: 1, gid: 2, mtime: 1_600_000_000, xattrs: {} });
    expect(attrsOf(v, 'deep/d00')).toEqual({ mode: 0o40750, uid: 0, gid: 0, mtime: 1_600_000_001, xattrs: { 'user.k': 'v' } });
    expect(attrsOf(v, 'listed')).toEqual({ mode: 0o40755, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: {} });
    // Nothing lower to keep (a file, or nothing): the builder's defaults, without the marker.
    expect(attrsOf(v, 'was-a-file')).toEqual({ mode: 0o40755, uid: 0, gid: 0, mtime: 0, xattrs: {} });
    expect(attrsOf(v, 'fresh')).toEqual({ mode: 0o40755, uid: 0, gid: 0, mtime: 0, xattrs: {} });
    expect(Object.keys(treeOf(v, blobMap(layers)))).toEqual(['/', '/deep', '/deep/d00', '/deep/d00/new', '/fresh', '/fresh/z', '/listed', '/listed/x', '/was-a-file', '/was-a-file/y']);
  });

  it('of the lowest layer get the defaults and lose the marker', async () => {
    const [l] = await layersOf([() => [E.file('a/b/c', 'c')]]);
    const v = new BootstrapView((await mergeBootstraps([{ bootstrap: l!.bootstrap }])).bootstrap);
    for (const p of ['', 'a', 'a/b']) expect(attrsOf(v, p), p).toEqual({ mode: 0o40755, uid: 0, gid: 0, mtime: 0, xattrs: {} });
  });
});

describe('mergeBootstraps: hardlinks', () => {
  it('groups hardlinks per layer and recounts nlink', async () => {
    const layers = await layersOf([
      () => [E.file('h1', 'shared'), E.hardlink('h2', 'h1'), E.hardlink('h3', 'h1')],
      () => [E.file('h2', 'replaced'), E.file('n1', 'upper pair'), E.hardlink('n2', 'n1'), E.file('h4', 'shared')],
    ]);
    const v = new BootstrapView((await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })))).bootstrap);
    const [h1, h2, h3, h4, n1, n2] = ['h1', 'h2', 'h3', 'h4', 'n1', 'n2'].map((p) => v.lookup(p));
    expect(h3).toBe(h1);
    expect(h2).not.toBe(h1);
    expect(h4).not.toBe(h1);
    expect(n2).toBe(n1);
    expect(v.inode(h1!).nlink).toBe(2);
    expect(v.inode(n1!).nlink).toBe(2);
    expect(v.inode(h2!).nlink).toBe(1);
    expect(v.inode(h3!).ino).toBe(v.inode(h1!).ino);
    const blobs = blobMap(layers);
    expect(readFileFromBlob(v, h2!, blobs).toString()).toBe('replaced');
    expect(readFileFromBlob(v, h3!, blobs).toString()).toBe('shared');
  });
});

describe('mergeBootstraps: blob table', () => {
  it('orders blobs by first chunk reference in tree order, dropping unreferenced ones', async () => {
    const layers = await layersOf([
      () => [E.file('z/data', 'from layer 0')],
      () => [E.dir('meta-only'), E.symlink('meta-only/l', 'x')],
      () => [E.file('a/data', 'from layer 2')],
      () => [E.file('m/data', 'layer 3, later whited out')],
      () => [E.file('.wh.m', '')],
    ]);
    expect(layers[1]!.blob).toBeNull();
    const merged = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })), { prefetchPatterns: ['/'] });
    expect(merged.blobIds).toEqual([layers[2]!.blob!.id, layers[0]!.blob!.id]);
    const v = new BootstrapView(merged.bootstrap);
    expect(v.blobs.map((b) => [b.blobIndex, b.blobId])).toEqual(merged.blobIds.map((id, i) => [i, id]));
    expect(v.slots.map((s) => s.blobId)).toEqual(merged.blobIds);
    // Device slots map blobs after the bootstrap, each on a 512 KiB boundary.
    const bootBlocks = merged.bootstrap.length / 4096;
    expect(v.slots[0]!.mappedBlkaddr).toBe(Math.ceil(bootBlocks / 128) * 128);
    expect(v.slots[1]!.mappedBlkaddr).toBe(Math.ceil((v.slots[0]!.mappedBlkaddr + v.slots[0]!.blocks) / 128) * 128);
    expect(v.prefetch).toEqual([128]);
    expect(v.chunkAddresses(v.lookup('a/data'))[0]!.blobIndex).toBe(0);
    expect(v.chunkAddresses(v.lookup('z/data'))[0]!.blobIndex).toBe(1);
    expect(v.chunks.map((c) => c.blobIndex).sort()).toEqual([0, 1]);
    expect(v.sb.blocks).toBe(2);
    expect(v.ext.flags & RafsSuperFlags.INLINED_CHUNK_DIGEST).not.toBe(0);
    expect(treeOf(v, blobMap(layers))['/a/data']).toBe('file:from layer 2');
  });

  it('replaces the placeholder id of inlined bootstraps and clears INLINED_FS_META', async () => {
    const layers = await layersOf([() => [E.file('one', 'first layer')], () => [E.file('two', 'second layer')]], { inlineBootstrap: true });
    const inlined = await Promise.all(
      layers.map(async (l) => {
        const src = bufferSource(l.blobBytes);
        return extractBlobSection(src, await readBlobToc(src), TocNames.BOOTSTRAP);
      }),
    );
    expect(new BootstrapView(inlined[0]!).blobs[0]!.blobId).toBe('x'.repeat(64));
    await expectError(mergeBootstraps(inlined.map((bootstrap) => ({ bootstrap }))), 'INVALID_ARGUMENT', 'layer 0', 'blobId');
    await expectError(mergeBootstraps([{ bootstrap: inlined[0]!, blobId: 'not-a-digest' }]), 'INVALID_ARGUMENT', 'layer 0', 'not-a-digest');
    const merged = await mergeBootstraps([
      { bootstrap: inlined[0]!, blobId: `sha256:${layers[0]!.blob!.id}` },
      { bootstrap: inlined[1]!, blobId: layers[1]!.blob!.id },
    ]);
    expect(merged.blobIds).toEqual([layers[0]!.blob!.id, layers[1]!.blob!.id]);
    const v = new BootstrapView(merged.bootstrap);
    for (const b of v.blobs) {
      expect(b.features & BlobFeatures.INLINED_FS_META).toBe(0);
      expect(b.features).toBe(0x7000_0021);
    }
    // Through the reader: every file reads back, digests verified.
    const reader = await BootstrapReader.open(merged.bootstrap);
    const blobs = blobMap(layers);
    const files = new RafsFileReader(reader, { readRange: async (id, off, len) => blobs[id]!.subarray(off, off + len) });
    expect(Buffer.from(await files.read(reader.lookup('/two')!, 0, 100)).toString()).toBe('second layer');
    expect(Buffer.from(await files.read(reader.lookup('/one')!, 0, 100)).toString()).toBe('first layer');
  });

  it('keeps chunk-dict blobs shared by several layers once, renaming only the own blob', async () => {
    const shared = prng(50_000, 4, true);
    const base = await build(() => [E.file('lib/shared', shared)], { chunkSize: 16384 });
    const dict = ChunkDict.fromBootstrap(base.bootstrap);
    const layers = await layersOf(
      [() => [E.file('x/copy', shared), E.file('x/own', 'own data of x')], () => [E.file('y/copy', shared), E.file('y/own', 'own data of y')]],
      { chunkSize: 16384, chunkDict: dict },
    );
    expect(new BootstrapView(layers[0]!.bootstrap).blobs.map((b) => b.blobId)).toEqual([layers[0]!.blob!.id, base.blob!.id]);
    const ids = layers.map((l) => l.blob!.id);
    await expectError(mergeBootstraps(layers.map((l, i) => ({ bootstrap: l.bootstrap, blobId: ids[i]! }))), 'INVALID_ARGUMENT', 'layer 0', 'chunk dict');
    const merged = await mergeBootstraps(
      layers.map((l, i) => ({ bootstrap: l.bootstrap, blobId: ids[i]! })),
      { chunkDict: dict },
    );
    // Tree order: x/copy (dict blob), x/own (layer 0), then y/own (layer 1).
    expect(merged.blobIds).toEqual([base.blob!.id, ids[0], ids[1]]);
    const v = new BootstrapView(merged.bootstrap);
    const blobs = { ...blobMap(layers), [base.blob!.id]: base.blobBytes };
    expect(readFileFromBlob(v, v.lookup('y/copy'), blobs).equals(shared)).toBe(true);
    expect(readFileFromBlob(v, v.lookup('y/own'), blobs).toString()).toBe('own data of y');
  });
});

describe('mergeBootstraps: validation', () => {
  it('requires agreeing chunk size, digester and uid/gid mode, naming the layer', async () => {
    const [a] = await layersOf([() => [E.file('a', 'a')]], { chunkSize: 8192 });
    const [b] = await layersOf([() => [E.file('b', 'b')]], { chunkSize: 16384 });
    const [c] = await layersOf([() => [E.file('c', 'c')]], { chunkSize: 8192, digester: 'sha256' });
    await expectError(mergeBootstraps([{ bootstrap: a!.bootstrap }, { bootstrap: b!.bootstrap }]), 'INVALID_ARGUMENT', 'layer 1', 'chunk size');
    await expectError(mergeBootstraps([{ bootstrap: a!.bootstrap }, { bootstrap: c!.bootstrap }]), 'INVALID_ARGUMENT', 'layer 1', 'digester');
    const implicit = Buffer.from(c!.bootstrap);
    implicit.writeUInt32LE(implicit.readUInt32LE(1152) & ~RafsSuperFlags.EXPLICIT_UID_GID, 1152);
    await expectError(mergeBootstraps([{ bootstrap: c!.bootstrap }, { bootstrap: implicit }]), 'INVALID_ARGUMENT', 'layer 1', 'uid/gid');
    await expectError(mergeBootstraps([]), 'INVALID_ARGUMENT', 'layers');
    await expectError(mergeBootstraps([{ bootstrap: a!.bootstrap }], { prefetchPatterns: ['nope'] }), 'INVALID_ARGUMENT', 'prefetchPatterns');
    const corrupt = Buffer.from(a!.bootstrap);
    corrupt.writeUInt32LE(0, 1024);
    await expectError(mergeBootstraps([{ bootstrap: a!.bootstrap }, { bootstrap: corrupt }]), 'INVALID_FORMAT', 'layer 1');
  });

  it('takes the compressor of the last layer and is repeatable', async () => {
    const layers = [await build(() => [E.file('a', 'a')], { compressor: 'lz4_block' }), await build(() => [E.file('b', 'b')], { compressor: 'zstd' })];
    const m1 = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })));
    const m2 = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })));
    expect(Buffer.from(m1.bootstrap).equals(Buffer.from(m2.bootstrap))).toBe(true);
    const v = new BootstrapView(m1.bootstrap);
    expect(v.ext.flags & RafsSuperFlags.COMPRESSION_ZSTD).not.toBe(0);
    expect(v.blobs.map((b) => b.compressionAlgo).sort()).toEqual([1, 3]);
  });
});

describe('mergeBootstraps: checked by erofs-utils', () => {
  it('merges raw layers into a filesystem fsck.erofs extracts with both devices', async () => {
    const big = prng(200_000, 8);
    const layers = await layersOf(
      [() => [E.file('usr/bin/tool', big, { mode: 0o755 }), E.file('etc/conf', 'v1'), E.file('tmp/junk', 'junk')], () => [E.file('etc/conf', 'v2'), E.file('.wh.tmp', ''), E.symlink('usr/bin/alias', 'tool')]],
      { compressor: 'none', chunkSize: 65536 },
    );
    const merged = await mergeBootstraps(layers.map((l) => ({ bootstrap: l.bootstrap })));
    const boot = join(work, 'merged.boot');
    writeFileSync(boot, merged.bootstrap);
    const devices = merged.blobIds.map((id) => {
      const p = join(work, id);
      writeFileSync(p, blobMap(layers)[id]!);
      return `--device=${p}`;
    });
    const out = join(work, 'merged-extract');
    await run('fsck.erofs', [...devices, `--extract=${out}`, boot]);
    expect(readFileSync(join(out, 'usr/bin/tool')).equals(big)).toBe(true);
    expect(readFileSync(join(out, 'etc/conf'), 'utf8')).toBe('v2');
    expect(() => readFileSync(join(out, 'tmp/junk'))).toThrow();
  });
});
