// Cold random 4 KiB reads of a converted image in a registry (run by zran.mjs; not a benchmark
// itself): each read opens a fresh RafsFileReader over a RegistryBlobBackend without read-ahead
// (no cache survives between reads), reads 4 KiB at a random offset of a random regular file
// and records its latency and the blob bytes fetched. Meta blobs (zran) are fetched once first,
// as a mount does, and reported separately. Prints one JSON line.
//   node _zran-reads.mjs HOST REPO TAG READS SEED
import { RegistryBlobBackend } from '@nydus-ts/backend';
import { readBootstrapLayer } from '@nydus-ts/converter';
import { BootstrapReader, RafsFileReader, attachRefBlobMetas } from '@nydus-ts/format';
import { RegistryClient } from '@nydus-ts/registry';

const [host, repo, tag, readsArg, seedArg] = process.argv.slice(2);
const reads = Number(readsArg ?? 50);
let seed = Number(seedArg ?? 1);
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

const client = new RegistryClient({ registry: host, insecure: true });
try {
  const manifest = JSON.parse((await client.getManifest(repo, tag)).bytes.toString('utf8'));
  const boot = await readBootstrapLayer(client.fetchBlob(repo, manifest.layers[manifest.layers.length - 1]));
  const sizes = new Map();
  const counting = (backend) => ({
    fetched: 0,
    requests: 0,
    async readRange(id, offset, length, signal) {
      this.fetched += length;
      this.requests++;
      return backend.readRange(id, offset, length, signal);
    },
  });
  const mountBackend = counting(new RegistryBlobBackend(client, repo, { readAhead: 0, blobSizes: sizes }));
  const reader = await BootstrapReader.open(boot.bootstrap);
  const t0 = process.hrtime.bigint();
  const metas = await attachRefBlobMetas(reader, mountBackend);
  const mountMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const files = [];
  for (const e of reader.walk()) if (e.inode.type === 'file' && e.inode.size >= 4096) files.push(e);
  const latencies = [];
  const bytes = [];
  for (let i = 0; i < reads; i++) {
    const f = files[Math.floor(random() * files.length)];
    const offset = Math.floor((random() * (f.inode.size - 4096)) / 4096) * 4096;
    const backend = counting(new RegistryBlobBackend(client, repo, { readAhead: 0, blobSizes: sizes }));
    const t = process.hrtime.bigint();
    const data = await new RafsFileReader(reader, backend).read(f.nid, offset, 4096);
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (data.length !== 4096) throw new Error(`${f.path}: read ${data.length} bytes`);
    bytes.push(backend.fetched);
  }
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  process.stdout.write(
    JSON.stringify({ files: files.length, reads, metaBlobs: metas, mountFetched: mountBackend.fetched, mountMs, latencyMs: { p50: q(latencies, 0.5), p99: q(latencies, 0.99) }, fetched: { p50: q(bytes, 0.5), p99: q(bytes, 0.99), max: Math.max(...bytes) } }) + '\n',
  );
} finally {
  await client.close();
}
