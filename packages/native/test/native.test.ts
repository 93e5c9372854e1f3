import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { gzipSync } from 'node:zlib';
import {
  GzipInflater,
  ZstdDecompressor,
  crc32c,
  liveThreadStates,
  zstdCompressBatchAsync,
  zstdCompressInto,
  zstdDecompressInto,
  zstdFrameContentSize,
  lz4CompressBlockInto,
  lz4CompressBound,
  lz4DecompressBlockInto,
} from '../src/index.js';

const addonPath = path.resolve(import.meta.dirname, '../build/Release/nydus_native.node');

/** Runs a tool with `input` on its stdin and returns its stdout (asynchronously: no blocked worker). */
function pipeThrough(command: string, args: string[], input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${command} exited with ${code}`))));
    child.stdin.end(input);
  });
}

/** Runs an ES module script in a fresh Node process; resolves with its exit code or signal and output. */
function runNodeScript(source: string, args: string[] = []): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs `source` (CommonJS, `addonPath` and `parentPort` in scope) in a worker thread until it exits. */
function runWorker(source: string, onMessage: (m: unknown, w: Worker) => void = () => {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(`const { parentPort, workerData: { addonPath } } = require('node:worker_threads');\n${source}`, { eval: true, workerData: { addonPath } });
    w.on('message', (m) => onMessage(m, w));
    w.on('error', reject);
    w.on('exit', resolve);
  });
}

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

  it('is a raw block that the lz4 tool reads once framed as a legacy stream', async () => {
    // The legacy lz4 frame is magic 0x184C2102 then (u32 size, block)*: raw blocks fit it as they are.
    const data = Buffer.alloc(200_000, 'nydus-ts lz4 interop ');
    const dst = Buffer.alloc(lz4CompressBound(data.length));
    const n = lz4CompressBlockInto(data, dst);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(0x184c2102, 0);
    header.writeUInt32LE(n, 4);
    const back = await pipeThrough('lz4', ['-d', '-c', '-q'], Buffer.concat([header, dst.subarray(0, n)]));
    expect(back.equals(data)).toBe(true);
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
    // The zstd tool reads the frame, and it declares its content size.
    expect((await pipeThrough('zstd', ['-d', '-c', '-q'], a.subarray(0, n))).equals(data)).toBe(true);
    expect(zstdFrameContentSize(a.subarray(0, n))).toBe(data.length);
  });

  it('adds the XXH64 content checksum on request, which decompression checks; later frames go without it again', async () => {
    const plain = Buffer.alloc(data.length);
    const n = zstdCompressInto(data, plain, 3);
    const summed = Buffer.alloc(data.length);
    const m = zstdCompressInto(data, summed, 3, true);
    expect(m).toBe(n + 4);
    expect(summed[4]! & 0x04).toBe(0x04); // Frame_Header_Descriptor: Content_Checksum_flag
    expect(plain[4]! & 0x04).toBe(0);
    expect(zstdCompressInto(data, Buffer.alloc(data.length), 3)).toBe(n);
    expect((await pipeThrough('zstd', ['-d', '-c', '-q'], summed.subarray(0, m))).equals(data)).toBe(true);
    const out = Buffer.alloc(data.length);
    expect(zstdDecompressInto(summed.subarray(0, m), out)).toBe(data.length);
    const bad = Buffer.from(summed.subarray(0, m));
    bad[m - 1] ^= 0xff; // the checksum itself
    expect(() => zstdDecompressInto(bad, out, 'summed frame')).toThrow(/summed frame.*checksum/i);
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

describe('zstd batches are memory-safe', () => {
  it('copies bounds at the call and writes results at the end: changing them meanwhile is harmless', async () => {
    // On the thread pool the batch used to read `bounds` from JS memory after checking it here:
    // bounds moved past the buffers while it ran made it read and write out of bounds (SIGSEGV).
    const script = `
      import { createRequire } from 'node:module';
      const addon = createRequire(import.meta.url)(process.argv[1]);
      const n = 512, size = 4096;
      const src = Buffer.alloc(n * size, 'abcdefgh'), dst = Buffer.alloc(n * size);
      const expected = addon.zstdCompressInto(src.subarray(0, size), Buffer.alloc(size - 1), 3);
      for (let round = 0; round < 8; round++) {
        const bounds = new Uint32Array(n + 1);
        for (let i = 0; i <= n; i++) bounds[i] = i * size;
        const results = new Int32Array(n);
        const batch = addon.zstdCompressBatchAsync(src, dst, bounds, results, 3);
        for (let i = 1; i <= n; i++) bounds[i] = 0x40000000 + i * size;
        results.fill(-7);
        await batch;
        if (!results.every((r) => r === expected)) throw new Error('round ' + round + ': results ' + results.slice(0, 4));
      }
      console.log('ok');
    `;
    const r = await runNodeScript(script, [addonPath]);
    expect(r.signal).toBeNull();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok');
  });

  it('marks the buffers a batch uses untransferable, so that no transfer can free them meanwhile', async () => {
    const src = Buffer.alloc(1 << 20, 'transfer me ');
    const dst = Buffer.alloc(src.length);
    const results = new Int32Array(1);
    const batch = zstdCompressBatchAsync(src, dst, Uint32Array.of(0, src.length), results, 3);
    const { port1, port2 } = new MessageChannel();
    port1.postMessage(src.buffer, [src.buffer]); // ignored for an untransferable buffer: copied
    port1.close();
    port2.close();
    expect(src.buffer.byteLength).toBeGreaterThan(0);
    await batch;
    expect(results[0]).toBeGreaterThan(0);
    expect(zstdDecompressInto(dst.subarray(0, results[0]), Buffer.alloc(src.length))).toBe(src.length);
  });

  it('survives worker threads terminated while their batches and inflate steps run', async () => {
    for (let i = 0; i < 4; i++) {
      await runWorker(
        `const addon = require(addonPath);
         const src = Buffer.alloc(8 << 20, 'worker batch ');
         for (let k = 0; k < 8; k++) addon.zstdCompressBatchAsync(src, Buffer.alloc(src.length), Uint32Array.of(0, 4 << 20, 8 << 20), new Int32Array(2), 3).catch(() => {});
         const z = addon.gzipInflaterCreate();
         addon.gzipInflateStepAsync(z, require('node:zlib').gzipSync(src), Buffer.alloc(1 << 20)).catch(() => {});
         parentPort.postMessage('queued');`,
        (_m, w) => void w.terminate(),
      );
    }
    // This thread still compresses on the pool afterwards.
    const data = Buffer.alloc(1 << 20, 'after ');
    const results = new Int32Array(1);
    await zstdCompressBatchAsync(data, Buffer.alloc(data.length), Uint32Array.of(0, data.length), results, 3);
    expect(results[0]).toBeGreaterThan(0);
  });
});

describe('per-thread library state', () => {
  it('is freed when a worker thread exits (LZ4 state, zstd contexts)', async () => {
    // Compress here first, so that this thread's own states exist before the baseline.
    const sample = Buffer.alloc(1000, 'main thread ');
    lz4CompressBlockInto(sample, Buffer.alloc(lz4CompressBound(sample.length)));
    const frame = Buffer.alloc(sample.length);
    zstdDecompressInto(frame.subarray(0, zstdCompressInto(sample, frame, 3)), Buffer.alloc(sample.length));
    const baseline = liveThreadStates();
    let during = -1;
    for (let i = 0; i < 3; i++) {
      const code = await runWorker(
        `const addon = require(addonPath);
         const data = Buffer.alloc(1 << 16, 'state ');
         addon.compressInto(data, Buffer.alloc(addon.compressBound(data.length)));
         const frame = Buffer.alloc(data.length);
         const n = addon.zstdCompressInto(data, frame, 3);
         addon.zstdDecompressInto(frame.subarray(0, n), Buffer.alloc(data.length));
         parentPort.postMessage(addon.liveThreadStates());`,
        (m) => (during = m as number),
      );
      expect(code).toBe(0);
      expect(during).toBeGreaterThanOrEqual(baseline + 3); // this worker's LZ4 state and two zstd contexts
      expect(liveThreadStates()).toBe(baseline);
    }
  });

  it('computes CRC-32C correctly while worker threads load the module at the same time', async () => {
    const data = randomBytes(1 << 16);
    const expected = crc32c(data);
    const workers = Array.from({ length: 4 }, () =>
      runWorker(
        `const addon = require(addonPath);
         parentPort.postMessage(addon.crc32c(Buffer.from('123456789')));`,
        (m) => expect(m).toBe(0xe3069283),
      ),
    );
    let rounds = 0;
    let settled = false;
    const all = Promise.all(workers).finally(() => (settled = true));
    while (!settled || rounds < 10) {
      expect(crc32c(data)).toBe(expected);
      rounds++;
      await new Promise((r) => setImmediate(r));
    }
    expect(await all).toEqual([0, 0, 0, 0]);
  });
});

describe('zstd decompression (the system libzstd, as for compression)', () => {
  const text = Buffer.alloc(300_000, 'nydus zstd stream ');

  it('decompresses frames into a caller buffer, skipping skippable frames', async () => {
    const frame = await pipeThrough('zstd', ['-c', '-q', '-3'], text); // streamed: no content size
    expect(zstdFrameContentSize(frame)).toBeUndefined();
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('skip')]);
    const out = Buffer.alloc(text.length * 2);
    expect(zstdDecompressInto(Buffer.concat([skippable, frame, frame]), out)).toBe(text.length * 2);
    expect(out.equals(Buffer.concat([text, text]))).toBe(true);
  });

  it('never writes past the output and names what failed', async () => {
    const frame = Buffer.alloc(text.length);
    const n = zstdCompressInto(text, frame, 3);
    expect(() => zstdDecompressInto(frame.subarray(0, n), Buffer.alloc(1000), 'chunk 7')).toThrow(/^chunk 7: corrupt zstd data: .*too small/);
    const bad = Buffer.from(frame.subarray(0, n));
    bad.fill(0xee, 8, 40);
    let err: unknown;
    try {
      zstdDecompressInto(bad, Buffer.alloc(text.length), 'chunk 8');
    } catch (e) {
      err = e;
    }
    expect(isNydusError(err, 'INVALID_FORMAT')).toBe(true);
    expect(() => zstdFrameContentSize(Buffer.from('not zstd'), 'chunk 9')).toThrow(/^chunk 9: not a zstd frame header/);
  });

  it('streams frames in pieces, stopping at each frame end', async () => {
    const frame = await pipeThrough('zstd', ['-c', '-q'], text);
    const skippable = Buffer.concat([Buffer.from([0x5f, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    let input: Uint8Array = Buffer.concat([skippable, frame, frame]);
    const z = new ZstdDecompressor('test.zst');
    const out: Buffer[] = [];
    const ends: number[] = [];
    for (let guard = 0; guard < 10_000 && input.length > 0; guard++) {
      const piece = input.subarray(0, 999);
      const buf = Buffer.alloc(70_000);
      const r = z.step(piece, buf);
      out.push(buf.subarray(0, r.produced));
      input = input.subarray(r.consumed);
      if (r.status === 'frame-end') ends.push(Buffer.concat(out).length);
    }
    expect(Buffer.concat(out).equals(Buffer.concat([text, text]))).toBe(true);
    expect(ends.at(-1)).toBe(text.length * 2);
    expect(ends).toContain(text.length);
    expect(() => new ZstdDecompressor('bad.zst').step(Buffer.from('definitely not zstd'), Buffer.alloc(100))).toThrow(/^bad\.zst: corrupt zstd data/);
  });

  it('is the only zstd library: the addon links the system libzstd and no package depends on zstd-napi', async () => {
    const { stdout } = await promisify(execFile)('ldd', [addonPath]);
    expect(stdout).toMatch(/libzstd\.so/);
    const root = path.resolve(import.meta.dirname, '../../..');
    const manifests = [path.join(root, 'package.json')];
    for (const dir of ['packages', 'apps']) for (const name of await readdir(path.join(root, dir))) manifests.push(path.join(root, dir, name, 'package.json'));
    for (const file of manifests) {
      const text = await readFile(file, 'utf8').catch(() => '{}');
      expect(text, file).not.toContain('zstd-napi');
    }
    expect((await readFile(path.join(root, 'package-lock.json'), 'utf8')).includes('zstd-napi'), 'package-lock.json').toBe(false);
  });
});
