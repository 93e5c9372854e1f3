#!/usr/bin/env node
// Benchmark: targz-ref ("zran") images. (1) The zran inflate kernels of @nydus-ts/native against
// Node's zlib on the same tar.gz; (2) `nydusify-ts convert --oci-ref` of the node image against
// Node's gunzip of the same layers and against the native conversion (`convert`) of the same
// image, same run, with the artifact size against the source's; (3) cold random 4 KiB reads of
// the zran image against the native one (latency, bytes fetched per read).
// Prints a Markdown section (## zran) on stdout; progress goes to stderr.
//
// Env: BENCH_ZRAN_RUNS (default 3), NYDUSIFY_TS_BIN.
import { readFileSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import { ensureMinbase, measure, median, nydusifyBin, repoRoot, sh } from './_lib.mjs';
import { ensureNodeLayer, pushNodeImage } from './_node-image.mjs';

const runs = Number(process.env.BENCH_ZRAN_RUNS ?? 3);
const extraCaCerts = process.env.NODE_EXTRA_CA_CERTS;
delete process.env.NODE_EXTRA_CA_CERTS;
const bin = process.env.NYDUSIFY_TS_BIN ?? nydusifyBin;
const log = (s) => process.stderr.write(`[bench zran] ${s}\n`);
const MB = 1e6;
const script = (name) => join(repoRoot, 'scripts/bench', name);
const json = (cmd) => JSON.parse(sh(cmd).trim().split('\n').pop());

async function main() {
  const loadStart = loadavg()[0];
  const minbase = ensureMinbase();
  const node = ensureNodeLayer();
  const layers = [{ tar: minbase.tar, tgz: minbase.tgz }, node];
  const inBytes = layers.reduce((a, l) => a + statSync(l.tgz).size, 0);
  const rawBytes = layers.reduce((a, l) => a + statSync(l.tar).size, 0);

  // (1) inflate kernels, in one process per layer file
  log('inflate kernels');
  const inflate = layers.map((l) => ({ file: l.tgz, ...json(`${process.execPath} ${script('_zran-inflate.mjs')} ${l.tgz} ${runs}`) }));

  // (2) conversion, (3) reads
  const registry = await startRegistry();
  const env = { HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
  const rows = { zran: [], native: [], gunzip: [] };
  let zranReport;
  let nativeReport;
  let reads;
  try {
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    await pushNodeImage(client, 'bench/node', layers);
    await client.close();
    const source = `${registry.host}/bench/node:v1`;
    const jsonOut = join(tmpdir(), `bench-zran-${process.pid}.json`);
    for (let i = 0; i < runs; i++) {
      log(`convert run ${i + 1}/${runs}`);
      // Same repository family, same registry: the originals are mounted, as a registry-side conversion would.
      rows.zran.push(measure(process.execPath, [bin, 'convert', '--oci-ref', '--source', source, '--target', `${registry.host}/bench/node-zran-${i}:v1`, '--source-insecure', '--target-insecure', '--output-json', jsonOut], { env }));
      zranReport = JSON.parse(readFileSync(jsonOut, 'utf8'));
      rows.native.push(measure(process.execPath, [bin, 'convert', '--source', source, '--target', `${registry.host}/bench/node-nydus-${i}:v1`, '--source-insecure', '--target-insecure', '--output-json', jsonOut], { env }));
      nativeReport = JSON.parse(readFileSync(jsonOut, 'utf8'));
      rows.gunzip.push(measure(process.execPath, [script('_convert-gunzip.mjs'), ...layers.map((l) => l.tgz)]));
    }
    rmSync(jsonOut, { force: true });
    log('cold 4 KiB reads');
    reads = {
      zran: json(`${process.execPath} ${script('_zran-reads.mjs')} ${registry.host} bench/node-zran-0 v1 200 7`),
      native: json(`${process.execPath} ${script('_zran-reads.mjs')} ${registry.host} bench/node-nydus-0 v1 200 7`),
    };
  } finally {
    await registry.stop();
  }

  const loadEnd = loadavg()[0];
  const med = (xs, k) => median(xs.map((x) => x[k]));
  const gzCpu = med(rows.gunzip, 'cpuSeconds');
  const gz = med(rows.gunzip, 'seconds');
  const zr = med(rows.zran, 'seconds');
  const nat = med(rows.native, 'seconds');
  const artifact = zranReport.ociRef.artifactBytes;
  const srcBytes = zranReport.ociRef.sourceBytes;
  const nativeOut = nativeReport.bytesOut + nativeReport.manifests[0].bootstrap.size;
  const rate = (bytes, s) => (bytes / MB / s).toFixed(0);
  const inflateRows = inflate.flatMap((r) => {
    const name = r.file.split('/').pop();
    const s = r.seconds;
    return [
      `| ${name} | Node zlib createGunzip (stream, 1 MiB pieces) | ${s.nodeStream.toFixed(3)} | ${rate(r.outBytes, s.nodeStream)} | 1.00× |`,
      `| ${name} | checkpointing gunzip (zlib, Z_BLOCK, ${r.checkpointCount} checkpoints with windows, thread pool) | ${s.checkpointing.toFixed(3)} | ${rate(r.outBytes, s.checkpointing)} | ${(s.checkpointing / s.nodeStream).toFixed(2)}× |`,
      `| ${name} | resumed inflate: 64 × 1 MiB from checkpoints (inflatePrime + window) | ${s.resume.toFixed(3)} | ${rate(r.resumeBytes, s.resume)} | ${((s.resume / r.resumeBytes) / (s.nodeStream / r.outBytes)).toFixed(2)}× per MB |`,
    ];
  });
  const line = (name, xs, note) => {
    const s = med(xs, 'seconds');
    return `| ${name} | ${s.toFixed(2)} | ${med(xs, 'cpuSeconds').toFixed(2)} | ${rate(inBytes, s)} | ${(med(xs, 'peakRssBytes') / 2 ** 20).toFixed(0)} | ${(s / gz).toFixed(2)}× | ${(s / nat).toFixed(2)}× | ${note} |`;
  };
  const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
  const readRow = (name, r) => `| ${name} | ${r.files} | ${r.latencyMs.p50.toFixed(1)} | ${r.latencyMs.p99.toFixed(1)} | ${kib(r.fetched.p50)} | ${kib(r.fetched.p99)} | ${kib(r.fetched.max)} | ${r.metaBlobs ? `${r.metaBlobs} meta blobs, ${(r.mountFetched / MB).toFixed(2)} MB, ${r.mountMs.toFixed(0)} ms` : '–'} |`;
  const out = [
    '## zran',
    '',
    `targz-ref ("zran") images: inflate kernels, \`nydusify-ts convert --oci-ref\`, and cold reads. Node image = Debian bookworm minbase + Node.js ${process.version} (2 gzip layers, ${(inBytes / MB).toFixed(1)} MB compressed, ${(rawBytes / MB).toFixed(1)} MB tar), loopback docker-registry, ${runs} runs, median. ${extraCaCerts ? 'NODE_EXTRA_CA_CERTS was removed from every Node process\'s environment. ' : ''}`,
    '',
    '### Inflate kernels (in one process, same bytes; ratio = time against Node\'s gunzip stream)',
    '',
    '| layer | what | s | MB/s (inflated) | vs Node |',
    '|---|---|---|---|---|',
    ...inflateRows,
    '',
    '### Conversion',
    '',
    '| tool | time (s) | CPU (s) | MB/s (gzip in) | peak RSS (MiB) | vs gunzip | vs native convert | note |',
    '|---|---|---|---|---|---|---|---|',
    line('nydusify-ts convert --oci-ref', rows.zran, `originals mounted (same registry); pushes ${(artifact / MB).toFixed(2)} MB`),
    line('nydusify-ts convert (native, zstd + blake3)', rows.native, `pushes ${(nativeOut / MB).toFixed(1)} MB`),
    line('baseline: Node gunzip of the same layers', rows.gunzip, 'both layers in parallel, output discarded'),
    '',
    `Machine load (1-minute load average, other work on the same cores) ${loadStart.toFixed(1)} at the start and ${loadEnd.toFixed(1)} at the end: wall times include waiting for the CPU, CPU times do not. In CPU time the zran conversion took ${(med(rows.zran, 'cpuSeconds') / gzCpu).toFixed(2)}× the gunzip baseline and ${(med(rows.zran, 'cpuSeconds') / med(rows.native, 'cpuSeconds')).toFixed(2)}× the native conversion.`,
    '',
    `Targets: zran conversion ≤ 1.3× gunzip: **${(zr / gz).toFixed(2)}×** (${zr / gz <= 1.3 ? 'met' : 'not met'}); ≤ 0.5× the native conversion: **${(zr / nat).toFixed(2)}×** (${zr / nat <= 0.5 ? 'met' : 'not met'}); artifact ≤ 5% of the source: **${((100 * artifact) / srcBytes).toFixed(2)}%** (${(artifact / MB).toFixed(2)} MB of ${(srcBytes / MB).toFixed(1)} MB; ${zranReport.manifests[0].layers.map((l) => `${l.ref.kind} layer with ${l.ref.contexts} contexts`).join(', ')}).`,
    '',
    '### Cold random 4 KiB reads (200 reads, each from a fresh reader without read-ahead or cache; RafsFileReader over the registry, no daemon)',
    '',
    '| image | files ≥ 4 KiB | p50 ms | p99 ms | fetched p50 | fetched p99 | fetched max | fetched at mount |',
    '|---|---|---|---|---|---|---|---|',
    readRow('zran (--oci-ref)', reads.zran),
    readRow('native (zstd, 1 MiB chunks)', reads.native),
    '',
    'A zran read fetches its chunk\'s whole inflate context (checkpoints ≥ 512 KiB of compressed data apart, up to ~2 MiB inflated) and inflates it from the checkpoint; a native read fetches one compressed chunk.',
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
