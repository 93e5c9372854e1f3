// Pipeline floor of the convert benchmark: what a registry-to-registry converter of these layers
// must at least do on this machine with the format's defaults, minus the tar parsing and the
// bootstrap: fetch each layer from the registry (sha256-verified), inflate it (ISA-L, thread
// pool), cut it into 1 MiB chunks, blake3 each chunk, compress it with zstd level 3 (thread pool,
// batches in flight as the builder does) and stream the compressed bytes into a registry upload
// committed under their sha256. All layers at once.
// Usage: node _convert-pipeline-floor.mjs REGISTRY SOURCE_REPO TAG TARGET_REPO
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { decompressStream } from '@nydus-ts/image';
import { zstdCompressBatchAsync } from '@nydus-ts/native';
import { RegistryClient } from '@nydus-ts/registry';
import { forEachFixedChunk } from './_fixed-chunks.mjs';

const CHUNK = 1 << 20;
const MAX_JOBS = 6;
const [registry, sourceRepo, tag, targetRepo] = process.argv.slice(2);
if (!targetRepo) throw new Error('usage: _convert-pipeline-floor.mjs REGISTRY SOURCE_REPO TAG TARGET_REPO');

const client = new RegistryClient({ registry, insecure: true });

async function pipelineFloor(layer) {
  const upload = await client.createUpload(targetRepo);
  const jobs = [];
  const write = (bytes) => (upload.write(bytes) ? undefined : new Promise((resolve) => upload.once('drain', resolve)));
  await forEachFixedChunk(decompressStream(client.fetchBlob(sourceRepo, layer), { reuseOutputBuffers: 4 }), CHUNK, async (src) => {
    const hasher = new Blake3Hasher();
    hasher.update(src);
    hasher.digestBuffer();
    const out = Buffer.allocUnsafe(src.length);
    const results = new Int32Array(1);
    jobs.push(zstdCompressBatchAsync(src, out, Uint32Array.of(0, src.length), results, 3).then(() => (results[0] > 0 ? out.subarray(0, results[0]) : src)));
    if (jobs.length >= MAX_JOBS) await write(await jobs.shift());
  });
  while (jobs.length > 0) await write(await jobs.shift());
  await upload.commit();
}

process.env.UV_THREADPOOL_SIZE ??= '4';
const manifest = JSON.parse(Buffer.from((await client.getManifest(sourceRepo, tag)).bytes).toString('utf8'));
await Promise.all(manifest.layers.map(pipelineFloor));
await client.close();
