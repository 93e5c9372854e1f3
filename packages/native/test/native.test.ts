import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { GzipInflater, crc32c, zstdCompressBatchAsync, zstdCompressInto, lz4CompressBlockInto, lz4CompressBound, lz4DecompressBlockInto } from '../src/index.js';

describe('lz4 block', () => {
  it('round-trips compressible and random data', () => {
    for (const data of [Buffer.alloc(1 << 20, 'abcabcabd'), randomBytes(65536), Buffer.alloc(1)]) {
      const dst = Buffer.alloc(lz4CompressBound(data.length));
      const n = lz4CompressBlockInto(data, dst);
      expect(n).toBeGreaterThan(0);
      const back = Buffer.alloc(data.length);
      expect(lz4DecompressBlockInto(dst.subarray(0, n), back)).toBe(data.length);
      expect(back.equals(data)).toBe(true);
    }
  });

  it('reports incompressible input as not fitting a smaller buffer', () => {
    const data = randomBytes(4096);
    expect(lz4CompressBlockInto(data, Buffer.alloc(data.length - 1))).toBe(0);
  });

  it('is a raw block that the lz4 tool reads once framed as a legacy stream', () => {
    // The legacy lz4 frame is magic 0x184C2102 then (u32 size, block)*: raw blocks fit it as they are.
    const data = Buffer.alloc(200_000, 'nydus-ts lz4 interop ');
    const dst = Buffer.alloc(lz4CompressBound(data.length));
    const n = lz4CompressBlockInto(data, dst);
    const dir = mkdtempSync(path.join(tmpdir(), 'lz4-'));
    try {
      const header = Buffer.alloc(8);
      header.writeUInt32LE(0x184c2102, 0);
      header.writeUInt32LE(n, 4);
      writeFileSync(path.join(dir, 'x.lz4'), Buffer.concat([header, dst.subarray(0, n)]));
      execFileSync('lz4', ['-d', '-f', '-q', path.join(dir, 'x.lz4'), path.join(dir, 'x')]);
      expect(readFileSync(path.join(dir, 'x')).equals(data)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects corrupt input and undersized output with a typed error', () => {
    const data = Buffer.alloc(10_000, 'x');
    const dst = Buffer.alloc(lz4CompressBound(data.length));
    const n = lz4CompressBlockInto(data, dst);
    expect(() => lz4DecompressBlockInto(dst.subarray(0, n), Buffer.alloc(100))).toThrow(/lz4/);
    let err: unknown;
    try {
      lz4DecompressBlockInto(Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(100), 'chunk 3');
    } catch (e) {
      err = e;
    }
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toMatch(/^chunk 3/);
    expect(() => lz4CompressBlockInto('x' as unknown as Uint8Array, dst)).toThrow(/Uint8Array/);
  });
});

describe('crc32c', () => {
  it('matches the standard check value and continues across pieces', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
    const data = Buffer.alloc(100_003, 'crc32c pieces ');
    expect(crc32c(data.subarray(50_001), crc32c(data.subarray(0, 50_001)))).toBe(crc32c(data));
  });

  it('agrees with a bitwise reference on random data of every alignment', () => {
    const reference = (b: Uint8Array): number => {
      let c = 0xffffffff;
      for (const byte of b) {
        c ^= byte;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return (c ^ 0xffffffff) >>> 0;
    };
    const data = randomBytes(4099);
    for (let off = 0; off < 9; off++) expect(crc32c(data.subarray(off, 4000 + off))).toBe(reference(data.subarray(off, 4000 + off)));
  });
});

describe('GzipInflater', () => {
  const text = Buffer.alloc(300_000, 'nydus gzip members ');
  const member = gzipSync(text);

  it('stops at a full output buffer and at the end of each member, leaving the next member unread', async () => {
    const z = new GzipInflater('test.gz');
    let input = Buffer.concat([member, member]);
    const out: Buffer[] = [];
    let ends = 0;
    for (let guard = 0; guard < 1000 && ends < 2; guard++) {
      const buf = Buffer.alloc(65_536);
      const r = guard % 2 ? z.step(input, buf) : await z.stepAsync(input, buf);
      out.push(buf.subarray(0, r.produced));
      input = input.subarray(r.consumed);
      if (r.status === 'output-full') expect(r.produced).toBe(buf.length);
      if (r.status === 'member-end') {
        ends++;
        expect(input.length).toBe(ends === 1 ? member.length : 0);
        z.nextMember();
      }
    }
    expect(ends).toBe(2);
    expect(Buffer.concat(out).equals(Buffer.concat([text, text]))).toBe(true);
  });

  it('throws a FormatError naming the stream on corrupt data', () => {
    const bad = Buffer.from(member);
    bad.fill(0xff, 10, 40);
    const z = new GzipInflater('layer sha256:abc');
    let err: unknown;
    try {
      z.step(bad, Buffer.alloc(1 << 20));
    } catch (e) {
      err = e;
    }
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect((err as Error).message).toContain('layer sha256:abc');
  });

  it('rejects a second step while one runs on the thread pool', async () => {
    const z = new GzipInflater();
    const running = z.stepAsync(member, Buffer.alloc(1 << 20));
    expect(() => z.step(member, Buffer.alloc(10))).toThrow(/already running/);
    expect((await running).status).toBe('member-end');
  });
});

/** One chunk through the thread-pool batch API: its frame length, 0 when it does not shrink. */
async function zstdCompressAsync(src: Uint8Array, dst: Uint8Array, level: number): Promise<number> {
  const results = new Int32Array(1);
  await zstdCompressBatchAsync(src, dst, Uint32Array.of(0, src.length), results, level);
  return results[0]!;
}

describe('zstd chunk compression', () => {
  const data = Buffer.alloc(1 << 20, 'nydus zstd chunk ');

  it('writes one frame into the caller buffer, inline and on the thread pool alike', async () => {
    const a = Buffer.alloc(data.length);
    const b = Buffer.alloc(data.length);
    const n = zstdCompressInto(data, a, 3);
    expect(n).toBeGreaterThan(0);
    expect(await zstdCompressAsync(data, b, 3)).toBe(n);
    expect(a.subarray(0, n).equals(b.subarray(0, n))).toBe(true);
    expect(zstdDecompress(a.subarray(0, n)).equals(data)).toBe(true);
  });

  it('reports a frame that does not fit as 0, and rejects bad levels', async () => {
    const random = randomBytes(65536);
    expect(zstdCompressInto(random, Buffer.alloc(random.length - 1), 3)).toBe(0);
    expect(await zstdCompressAsync(random, Buffer.alloc(random.length - 1), 3)).toBe(0);
    expect(() => zstdCompressInto(data, Buffer.alloc(10), 99)).toThrow(/level 99/);
  });

  it('compresses many chunks in parallel to the same bytes as one at a time', async () => {
    const chunks = Array.from({ length: 16 }, (_, i) => Buffer.concat([randomBytes(1000 * i), Buffer.alloc(200_000, i)]));
    const inline = chunks.map((c) => {
      const out = Buffer.alloc(c.length);
      return out.subarray(0, zstdCompressInto(c, out, 3));
    });
    const outs = chunks.map((c) => Buffer.alloc(c.length));
    const sizes = await Promise.all(chunks.map((c, i) => zstdCompressAsync(c, outs[i]!, 3)));
    sizes.forEach((n, i) => expect(outs[i]!.subarray(0, n).equals(inline[i]!)).toBe(true));
  });

  it('compresses a batch chunk by chunk into the same offsets, 0 for chunks that do not shrink', async () => {
    const chunks = [Buffer.alloc(0), Buffer.from('x'), randomBytes(5000), Buffer.alloc(200_000, 7), Buffer.alloc(3, 1)];
    const src = Buffer.concat(chunks);
    const bounds = Uint32Array.from([0, ...chunks.map((_, i) => chunks.slice(0, i + 1).reduce((a, c) => a + c.length, 0))]);
    const dst = Buffer.alloc(src.length);
    const results = new Int32Array(chunks.length);
    await zstdCompressBatchAsync(src, dst, bounds, results, 3);
    chunks.forEach((c, i) => {
      const alone = Buffer.alloc(Math.max(c.length - 1, 0));
      const n = c.length < 2 ? 0 : zstdCompressInto(c, alone, 3);
      expect(results[i], `chunk ${i}`).toBe(n);
      expect(dst.subarray(bounds[i], bounds[i]! + n).equals(alone.subarray(0, n))).toBe(true);
    });
    expect(results[2]).toBe(0); // random bytes do not shrink
    await expect(zstdCompressBatchAsync(src, Buffer.alloc(10), bounds, results, 3)).rejects.toThrow(/beyond the buffers/);
    await expect(zstdCompressBatchAsync(src, dst, Uint32Array.of(5, 2), results, 3)).rejects.toThrow(/must not decrease/);
  });
});
