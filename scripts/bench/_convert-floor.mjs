// Compute floor of the convert benchmark: what any converter of these layers must at least do on
// this machine with the format's defaults, without tar parsing, digests, bookkeeping or upload:
// inflate each gzip layer (ISA-L, thread pool) and compress it in 1 MiB chunks with zstd level 3
// (thread pool, as the builder does), all layers at once, output discarded.
// Usage: node _convert-floor.mjs FILE...
import { createReadStream } from 'node:fs';
import { decompressStream } from '@nydus-ts/image';
import { zstdCompressBatchAsync } from '@nydus-ts/native';
import { forEachFixedChunk } from './_fixed-chunks.mjs';

const CHUNK = 1 << 20;
const MAX_JOBS = 6;

async function floor(file) {
  const jobs = [];
  const spare = [];
  const input = decompressStream(createReadStream(file, { highWaterMark: CHUNK }), { reuseOutputBuffers: 4 });
  await forEachFixedChunk(input, CHUNK, async (src) => {
    const out = spare.pop() ?? Buffer.allocUnsafe(CHUNK);
    jobs.push(zstdCompressBatchAsync(src, out, Uint32Array.of(0, src.length), new Int32Array(1), 3).then(() => spare.push(out)));
    if (jobs.length >= MAX_JOBS) await jobs.shift();
  });
  await Promise.all(jobs);
}

process.env.UV_THREADPOOL_SIZE ??= '4';
await Promise.all(process.argv.slice(2).map(floor));
