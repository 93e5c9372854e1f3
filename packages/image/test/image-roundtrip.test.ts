// Issue 2, "round trip": create then unpack equals the source, for every compressor and both
// digesters; check verifies every chunk; a corrupted blob is detected, never returned.
import { createReadStream } from 'node:fs';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isNydusError } from '@nydus-ts/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkImage, createImage, readTarEntries, unpackImage } from '../src/index.js';
import { diffTrees, makeTree, snapshotEntries, runTool } from '@nydus-ts/testing';

const tarSnapshot = (file: string) => snapshotEntries(readTarEntries(createReadStream(file)), file);

describe('create → unpack round trip', () => {
  let work: string;
  let sourceTar: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydus-roundtrip-'));
    const src = path.join(work, 'src');
    await mkdir(src);
    await makeTree(src, { seed: 3, small: true });
    sourceTar = path.join(work, 'src.tar');
    await runTool('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--sort=name', '-C', src, '-cf', sourceTar, '.']);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  for (const compressor of ['none', 'lz4_block', 'zstd'] as const) {
    for (const digester of ['blake3', 'sha256'] as const) {
      it(`${compressor} + ${digester}`, async () => {
        const dir = path.join(work, `${compressor}-${digester}`);
        const bootstrap = path.join(dir, 'boot');
        const blobDir = path.join(dir, 'blobs');
        await createImage({ type: 'tar-rafs', source: sourceTar, bootstrap, blobDir, compressor, digester, chunkSize: 0x10000 });
        const check = await checkImage({ bootstrap, blobDir });
        expect(check.chunksVerified).toBeGreaterThan(10);
        const out = path.join(dir, 'out.tar');
        await unpackImage({ bootstrap, blobDir, output: out });
        const diff = diffTrees(await tarSnapshot(sourceTar), await tarSnapshot(out), { ignorePath: (p) => p === '' });
        expect(diff).toEqual([]);
      });
    }
  }

  it('is repeatable: the same input gives byte-identical bootstrap and blob', async () => {
    const a = path.join(work, 'rep-a');
    const b = path.join(work, 'rep-b');
    for (const d of [a, b]) await createImage({ type: 'tar-rafs', source: sourceTar, bootstrap: path.join(d, 'boot'), blobDir: path.join(d, 'blobs') });
    expect(await readFile(path.join(a, 'boot'))).toEqual(await readFile(path.join(b, 'boot')));
    expect(await readdir(path.join(a, 'blobs'))).toEqual(await readdir(path.join(b, 'blobs')));
  });

  it('detects a corrupted chunk and leaves no output file behind', async () => {
    const dir = path.join(work, 'corrupt');
    const bootstrap = path.join(dir, 'boot');
    const blobDir = path.join(dir, 'blobs');
    const built = await createImage({ type: 'tar-rafs', source: sourceTar, bootstrap, blobDir, compressor: 'lz4_block' });
    const blob = await readFile(built.blob!.path);
    blob[100] ^= 0xff;
    await writeFile(built.blob!.path, blob);
    const err = await checkImage({ bootstrap, blobDir }).catch((e: unknown) => e);
    expect(isNydusError(err)).toBe(true);
    const out = path.join(dir, 'out.tar');
    const err2 = await unpackImage({ bootstrap, blobDir, output: out }).catch((e: unknown) => e);
    expect(isNydusError(err2)).toBe(true);
    expect((await readdir(dir)).filter((f) => f.startsWith('out') || f.startsWith('.out'))).toEqual([]);
  });
});
