// When the whole-bootstrap check runs: at load (the default, and what a daemon started with
// --bootstrap does: a bad bootstrap is refused before anything is mounted), or in the background
// right after load (images mounted through the API in FUSE mode, so a cold start does not wait
// ~0.3 s for it): the image serves at once, the reader still refuses the bad structure when a
// read reaches it, and the background check logs it.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConsoleLogger, isNydusError } from '@nydus-ts/core';
import { LocalBlobBackend } from '@nydus-ts/backend';
import { BootstrapReader } from '@nydus-ts/format';
import { BlobCacheManager, FetchScheduler, RafsFilesystem, RafsImage } from '../src/index.js';
import { buildLocalImage } from './support/images.js';

describe('whole-bootstrap check at load or in the background', () => {
  let work: string;
  let blobDir: string;
  let mutated: Buffer;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'nydusd-bootcheck-'));
    const src = path.join(work, 'src');
    await mkdir(path.join(src, 'a'), { recursive: true });
    await mkdir(path.join(src, 'b'), { recursive: true });
    await writeFile(path.join(src, 'a/victim.txt'), 'victim\n');
    await writeFile(path.join(src, 'b/ok.txt'), 'fine\n');
    const boot = path.join(work, 'image.boot');
    blobDir = path.join(work, 'blobs');
    await buildLocalImage(src, boot, blobDir);
    const good = await readFile(boot);
    const reader = await BootstrapReader.open(good);
    const victim = reader.lookup('/a/victim.txt')!;
    mutated = Buffer.from(good);
    mutated.writeUInt16LE(0xffff, reader.superblock.metaBlkaddr * 4096 + victim * 32); // i_format
  }, 120_000);

  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  const load = (check: 'load' | 'background' | undefined, lines: string[] = []): Promise<RafsImage> =>
    RafsImage.load(new Uint8Array(mutated), {
      backend: new LocalBlobBackend(blobDir),
      cacheManager: new BlobCacheManager(createConsoleLogger({ write: () => undefined })),
      scheduler: new FetchScheduler(),
      workDir: path.join(work, `cache-${check}`),
      amplifyIo: 0,
      id: '/',
      logger: createConsoleLogger({ level: 'warn', write: (l) => lines.push(l) }),
      ...(check && { bootstrapCheck: check }),
    });

  it('by default a bad inode anywhere fails the load, naming it', async () => {
    const err = await load(undefined).then(() => undefined, (e: unknown) => e);
    expect(isNydusError(err, 'INVALID_FORMAT'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/inode\[nid \d+\]/);
  });

  it('in the background: the image serves at once, the bad inode fails where it is reached, the check logs it', async () => {
    const lines: string[] = [];
    const image = await load('background', lines);
    try {
      const fs = new RafsFilesystem(image);
      const ok = fs.resolve('/b/ok.txt');
      const buf = Buffer.alloc(16);
      expect(buf.subarray(0, await fs.read(ok, buf, 0, 16)).toString()).toBe('fine\n');
      const err = (() => {
        try {
          fs.getattr(fs.resolve('/a/victim.txt'));
          return undefined;
        } catch (e) {
          return e;
        }
      })();
      expect(err, 'the reader refuses the mutated inode').toBeDefined();
      for (let i = 0; i < 100 && !lines.some((l) => l.includes('bootstrap check found a bad structure')); i++) await sleep(20);
      expect(lines.join('\n')).toMatch(/ERROR bootstrap check found a bad structure.*inode\[nid \d+\]/);
    } finally {
      await image.close();
    }
  });
});
