import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';
import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { decompressStream, detectCompression, readTarEntries } from '../src/index.js';
import type { LayerCompression } from '../src/index.js';
import { createRandom, runToolBuffer } from '@nydus-ts/testing';
import { END, fileMember } from '@nydus-ts/testing';
import { chunked, collect, zstdCompressProcess, zstdFrame as zstdCompress } from '@nydus-ts/testing';

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), '../../../testdata/nydus-upstream');

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('decompressStream', () => {
  const rnd = createRandom(9);
  const part1 = Buffer.concat([rnd.bytes(300_000), Buffer.alloc(500_000, 0x61)]);
  const part2 = rnd.bytes(123_457);
  const plain = Buffer.concat([part1, part2]);

  it('detects the compression from the magic bytes', () => {
    expect(detectCompression(Uint8Array.from([0x1f, 0x8b, 8, 0]))).toBe('gzip');
    expect(detectCompression(Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(detectCompression(Uint8Array.from([0x28, 0xb5, 0x2f]))).toBe('none');
    expect(detectCompression(Buffer.from('ustar'))).toBe('none');
    // A zstd stream may start with a skippable frame (magic 0x184D2A50..5F, then its size).
    expect(detectCompression(Uint8Array.from([0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]))).toBe('zstd');
    expect(detectCompression(Uint8Array.from([0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0]))).toBe('none');
    expect(detectCompression(Uint8Array.from([0x60, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]))).toBe('none');
  });

  it('reads a zstd layer that starts with a skippable frame (as containerd does) into its tar', async () => {
    const tar = Buffer.concat([fileMember('skipped/first', 'data behind a skippable frame'), END]);
    const layer = Buffer.concat([Buffer.from([0x5e, 0x2a, 0x4d, 0x18, 6, 0, 0, 0]), Buffer.from('nydus!'), zstdCompress(tar)]);
    for (const size of [1, 5, 65_536]) {
      let detected: LayerCompression | undefined;
      expect(await collect(decompressStream(chunked(layer, size), { onDetect: (c) => (detected = c) }))).toEqual(tar);
      expect(detected).toBe('zstd');
    }
    const names: string[] = [];
    for await (const e of readTarEntries(decompressStream(chunked(layer)))) names.push(e.path);
    expect(names).toEqual(['skipped/first']);
  });

  const cases: Array<[LayerCompression, string, Buffer]> = [
    ['gzip', 'one gzip member', gzipSync(plain)],
    ['gzip', 'two concatenated gzip members', Buffer.concat([gzipSync(part1), gzipSync(part2)])],
    ['zstd', 'one zstd frame', zstdCompress(plain)],
    ['zstd', 'two zstd frames', Buffer.concat([zstdCompress(part1), zstdCompress(part2)])],
    ['none', 'plain data', plain],
  ];
  for (const [kind, label, encoded] of cases) {
    it(`decodes ${label}, whatever the input chunking`, async () => {
      for (const size of [1, 2, 3, 65_536]) {
        if (size < 4 && encoded.length > 100_000) {
          // Byte-at-a-time only over the head: the sniffing must cope with 1-byte chunks.
          const head = encoded.subarray(0, 16);
          const rest = encoded.subarray(16);
          const source = (async function* () {
            yield* chunked(head, size);
            yield rest;
          })();
          let detected: LayerCompression | undefined;
          const out = await collect(decompressStream(source, { onDetect: (c) => (detected = c) }));
          expect(detected).toBe(kind);
          expect(sha(out)).toBe(sha(plain));
          continue;
        }
        expect(sha(await collect(decompressStream(chunked(encoded, size))))).toBe(sha(plain));
      }
    });
  }

  it('passes through empty and tiny plain inputs', async () => {
    expect(await collect(decompressStream(chunked(Buffer.alloc(0))))).toEqual(Buffer.alloc(0));
    expect(await collect(decompressStream(chunked(Buffer.from('ab'), 1)))).toEqual(Buffer.from('ab'));
  });

  it('decodes the upstream gzip layers (two members, blocked gzip) like gzip -dc', async () => {
    for (const name of ['zran-two-streams.tar.gz', 'bgzip.tar.gz', 'zran-single-stream.tar.gz', 'zran-zero-file.tar.gz']) {
      const path = join(fixtures, name);
      const expected = await runToolBuffer('gzip', ['-dc', path]);
      const actual = await collect(decompressStream(createReadStream(path)));
      expect(sha(actual), name).toBe(sha(expected));
      // And the result is a tar the reader walks to its end.
      let n = 0;
      for await (const e of readTarEntries(decompressStream(createReadStream(path)))) {
        if (e.content) await collect(e.content);
        n++;
      }
      expect(n, name).toBeGreaterThan(0);
    }
  });

  it('decodes the upstream zstd blob to the same bytes as the raw blob', async () => {
    const raw = readFileSync(join(fixtures, '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca'));
    const out = await collect(decompressStream(createReadStream(join(fixtures, '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca.zst'))));
    expect(out.equals(raw)).toBe(true);
  });

  it('fails with INVALID_FORMAT on corrupt gzip and zstd', async () => {
    const gz = Buffer.from(gzipSync(plain));
    for (let i = 20; i < 60; i++) gz[i] = gz[i]! ^ 0x5a;
    const e1 = await errorOf(collect(decompressStream(chunked(gz))));
    expect(isNydusError(e1, 'INVALID_FORMAT')).toBe(true);
    expect((e1 as { field?: string }).field).toBe('layer.gzip');

    const zs = Buffer.from(zstdCompress(plain));
    for (let i = 10; i < 40; i++) zs[i] = zs[i]! ^ 0x5a;
    const e2 = await errorOf(collect(decompressStream(chunked(zs))));
    expect(isNydusError(e2, 'INVALID_FORMAT')).toBe(true);
    expect((e2 as { field?: string }).field).toBe('layer.zstd');
  });

  it('fails with INVALID_FORMAT on truncated gzip and zstd', async () => {
    const gz = gzipSync(plain);
    const e1 = await errorOf(collect(decompressStream(chunked(gz.subarray(0, gz.length - 100)))));
    expect(isNydusError(e1, 'INVALID_FORMAT')).toBe(true);
    const zs = zstdCompress(plain);
    const e2 = await errorOf(collect(decompressStream(chunked(zs.subarray(0, zs.length - 100)))));
    expect(isNydusError(e2, 'INVALID_FORMAT')).toBe(true);
  });

  it('zstd: reads streamed frames (no content size) behind skippable frames, and rejects trailing junk', async () => {
    const z = zstdCompressProcess();
    const compressed = collect(z);
    z.end(plain);
    const streamed = await compressed;
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0]), Buffer.from('nydus')]);
    for (const size of [3, 65_536]) {
      // A skippable frame between frames is skipped.
      expect(sha(await collect(decompressStream(chunked(Buffer.concat([zstdCompress(part1.subarray(0, 10)), skippable, streamed]), size))))).toBe(
        sha(Buffer.concat([part1.subarray(0, 10), plain])),
      );
    }
    const err = await errorOf(collect(decompressStream(chunked(Buffer.concat([streamed, Buffer.from('junk after the frame')])))));
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as { field?: string }).field).toBe('layer.zstd');
  });

  it('gzip: ignores zero padding after the last member, rejects other trailing data and bad checksums', async () => {
    const gz = gzipSync(plain);
    const small = part2.subarray(0, 5000);
    for (const size of [1, 7, 65_536]) {
      expect(sha(await collect(decompressStream(chunked(Buffer.concat([gzipSync(small), Buffer.alloc(1024)]), size))))).toBe(sha(small));
    }
    expect(sha(await collect(decompressStream(chunked(Buffer.concat([gz, Buffer.alloc(1024)])))))).toBe(sha(plain));
    for (const tail of [Buffer.from('junk'), Buffer.concat([Buffer.alloc(10), Buffer.from([1])]), Buffer.from([0x1f])]) {
      const err = await errorOf(collect(decompressStream(chunked(Buffer.concat([gz, tail])))));
      expect(isNydusError(err, 'INVALID_FORMAT'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/after|truncated/);
    }
    // CRC-32 and ISIZE of the trailer are both checked.
    for (const at of [gz.length - 8, gz.length - 2]) {
      const bad = Buffer.from(gz);
      bad[at] = bad[at]! ^ 1;
      const err = await errorOf(collect(decompressStream(chunked(bad))));
      expect((err as Error).message).toContain('checksum mismatch');
    }
  });

  it('gzip: reuses a ring of output buffers when asked, for consumers done with a chunk two chunks later', async () => {
    const gz = gzipSync(Buffer.concat([plain, plain, plain]));
    const seen = new Set<ArrayBufferLike>();
    const h = createHash('sha256');
    for await (const chunk of decompressStream(chunked(gz, 100_000), { reuseOutputBuffers: 3 })) {
      h.update(chunk);
      seen.add(chunk.buffer);
    }
    expect(h.digest('hex')).toBe(sha(Buffer.concat([plain, plain, plain])));
    expect(seen.size).toBeLessThanOrEqual(3);
    const err = await errorOf(collect(decompressStream(chunked(gz), { reuseOutputBuffers: 2 })));
    expect(isNydusError(err, 'INVALID_ARGUMENT')).toBe(true);
  });

  it('passes source errors through unchanged', async () => {
    const boom = new Error('network reset');
    for (const encoded of [gzipSync(plain), zstdCompress(plain), plain]) {
      const source = (async function* () {
        yield encoded.subarray(0, 1000);
        throw boom;
      })();
      expect(await errorOf(collect(decompressStream(source)))).toBe(boom);
    }
  });

  it('reads the source only as fast as output is consumed, and stops it on early exit', async () => {
    const big = await promisify(gzip)(Buffer.concat(Array.from({ length: 16 }, () => rnd.bytes(1 << 20))));
    let pulled = 0;
    let finished = false;
    const source = (async function* () {
      try {
        for await (const c of chunked(big, 65_536)) {
          pulled += c.length;
          yield c;
        }
      } finally {
        finished = true;
      }
    })();
    let out = 0;
    for await (const chunk of decompressStream(source)) {
      out += chunk.length;
      if (out > 1 << 20) break;
    }
    expect(pulled).toBeLessThan(big.length / 2);
    await new Promise((r) => setTimeout(r, 10));
    expect(finished).toBe(true);
  });

  it('reports cancellation through the abort signal', async () => {
    const controller = new AbortController();
    const err = await errorOf((async () => {
      for await (const chunk of decompressStream(chunked(gzipSync(plain), 1000), { signal: controller.signal })) {
        void chunk;
        controller.abort();
      }
    })());
    expect(isNydusError(err, 'CANCELLED')).toBe(true);
  });
});
