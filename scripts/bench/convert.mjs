#!/usr/bin/env node
// Benchmark: `nydusify-ts convert` of the node image (Debian bookworm minbase + the local Node.js,
// two gzip layers) from a loopback docker-registry to itself, against Node's gunzip of the same
// layers (the floor: conversion must at least decompress) and `ctr-remote images convert
// --estargz --oci` (stargz-snapshotter's converter) in a private containerd, same run.
// Prints a Markdown section (## Convert) on stdout; progress goes to stderr.
//
// Env: BENCH_CONVERT_RUNS (default 3), NYDUSIFY_TS_BIN.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import { ensureMinbase, measure, median, nydusifyBin, repoRoot, sh } from './_lib.mjs';
import { ensureNodeLayer, pushNodeImage } from './_node-image.mjs';

const runs = Number(process.env.BENCH_CONVERT_RUNS ?? 3);
// As in the other benchmarks: NODE_EXTRA_CA_CERTS (set by some sandboxes for every process) makes
// each Node start-up build a certificate store; every Node process here runs without it.
const extraCaCerts = process.env.NODE_EXTRA_CA_CERTS;
delete process.env.NODE_EXTRA_CA_CERTS;
const bin = process.env.NYDUSIFY_TS_BIN ?? nydusifyBin;
const log = (s) => process.stderr.write(`[bench convert] ${s}\n`);
const MB = 1e6;

/** A private containerd (own root, state and socket) for ctr-remote. */
async function startContainerd() {
  const dir = mkdtempSync(join(tmpdir(), 'bench-containerd-'));
  const sock = join(dir, 'containerd.sock');
  writeFileSync(join(dir, 'config.toml'), [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${sock}"`,
    '[ttrpc]',
    `  address = "${sock}.ttrpc"`,
    '[debug]',
    `  address = "${sock}.debug"`,
    '',
  ].join('\n'));
  const child = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b) => (stderr += b));
  for (let i = 0; i < 100; i++) {
    if (existsSync(sock) && spawnSync('ctr', ['-a', sock, 'version'], { stdio: 'ignore' }).status === 0) break;
    if (child.exitCode !== null) throw new Error(`containerd exited: ${stderr.slice(-2000)}`);
    await sleep(100);
  }
  return {
    sock,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      spawnSync('bash', ['-c', `umount -R ${dir}/state 2>/dev/null; umount -R ${dir}/root 2>/dev/null; true`]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main() {
  const minbase = ensureMinbase();
  const node = ensureNodeLayer();
  const layers = [{ tar: minbase.tar, tgz: minbase.tgz }, node];
  const inBytes = layers.reduce((a, l) => a + statSync(l.tgz).size, 0);
  const rawBytes = layers.reduce((a, l) => a + statSync(l.tar).size, 0);
  const registry = await startRegistry();
  const env = { HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
  const rows = { ours: [], workers: [], pipeline: [], floor: [], gunzip: [], estargz: [] };
  let defaultWorkers = false;
  let ctrVersion = 'unavailable';
  let estargzNote = '';
  let outBytes = 0;
  try {
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    await pushNodeImage(client, 'bench/node', layers);
    await client.close();
    const source = `${registry.host}/bench/node:v1`;
    log(`node image: ${(inBytes / MB).toFixed(1)} MB gzip, ${(rawBytes / MB).toFixed(1)} MB tar`);

    let containerd;
    if (spawnSync('which', ['ctr-remote', 'containerd']).status === 0) {
      try {
        containerd = await startContainerd();
        sh(`ctr -a ${containerd.sock} images pull --plain-http ${source} >/dev/null`);
        ctrVersion = sh("dpkg-query -W -f='${Version}' stargz-snapshotter").trim();
      } catch (err) {
        estargzNote = `ctr-remote not run: ${err.message.split('\n')[0]}`;
        await containerd?.stop();
        containerd = undefined;
      }
    } else estargzNote = 'ctr-remote/containerd not installed';

    const jsonOut = join(tmpdir(), `bench-convert-${process.pid}.json`);
    for (let i = 0; i < runs; i++) {
      log(`run ${i + 1}/${runs}`);
      const m = measure(process.execPath, [bin, 'convert', '--source', source, '--target', `${registry.host}/bench/node-nydus-${i}:v1`, '--source-insecure', '--target-insecure', '--output-json', jsonOut], { env });
      rows.ours.push(m);
      const report = JSON.parse(readFileSync(jsonOut, 'utf8'));
      outBytes = report.bytesOut + report.manifests[0].bootstrap.size;
      defaultWorkers = report.workers === true;
      // the same conversion with each layer in a worker thread, both layers at once and one at a time
      rows.workers.push(measure(process.execPath, [bin, 'convert', '--source', source, '--target', `${registry.host}/bench/node-nydus-w-${i}:v1`, '--source-insecure', '--target-insecure', '--workers'], { env }));
      rows.pipeline.push(measure(process.execPath, [join(repoRoot, 'scripts/bench/_convert-pipeline-floor.mjs'), registry.host, 'bench/node', 'v1', `bench/node-floor-${i}`], { env }));
      rows.floor.push(measure(process.execPath, [join(repoRoot, 'scripts/bench/_convert-floor.mjs'), ...layers.map((l) => l.tgz)]));
      rows.gunzip.push(measure(process.execPath, [join(repoRoot, 'scripts/bench/_convert-gunzip.mjs'), ...layers.map((l) => l.tgz)]));
      if (containerd) {
        rows.estargz.push(measure('ctr-remote', ['-a', containerd.sock, 'images', 'convert', '--estargz', '--oci', source, `bench/node-esgz-${i}:v1`]));
      }
    }
    rmSync(jsonOut, { force: true });
    await containerd?.stop();
  } finally {
    await registry.stop();
  }

  const med = (xs, k) => median(xs.map((x) => x[k]));
  const ours = med(rows.ours, 'seconds');
  const gz = med(rows.gunzip, 'seconds');
  const es = rows.estargz.length ? med(rows.estargz, 'seconds') : undefined;
  const ratio = ours / gz;
  const line = (name, xs, note) => {
    const s = med(xs, 'seconds');
    return `| ${name} | ${s.toFixed(2)} | ${med(xs, 'cpuSeconds').toFixed(2)} | ${(inBytes / MB / s).toFixed(0)} | ${(rawBytes / MB / s).toFixed(0)} | ${(med(xs, 'peakRssBytes') / 2 ** 20).toFixed(0)} | ${(s / gz).toFixed(2)}× | ${note} |`;
  };
  const out = [
    '## Convert',
    '',
    `\`nydusify-ts convert --source REG/bench/node:v1 --target REG/bench/node-nydus:v1 --source-insecure --target-insecure\` (defaults: zstd, 1 MiB chunks, blake3, 4 layers at once), loopback docker-registry, ${runs} runs, median. Node image = Debian bookworm minbase + Node.js ${process.version} (2 gzip layers, ${(inBytes / MB).toFixed(1)} MB compressed, ${(rawBytes / MB).toFixed(1)} MB tar). Output ${(outBytes / MB).toFixed(1)} MB (Nydus blobs + bootstrap layer). CPU is user + sys of the process (the registry's own is not included). ${extraCaCerts ? 'NODE_EXTRA_CA_CERTS was removed from every Node process\'s environment (the baseline is a Node process too). ' : ''}${process.env.BENCH_CPUS ?? ''}`,
    '',
    '| tool | time (s) | CPU (s) | MB/s (gzip in) | MB/s (tar) | peak RSS (MiB) | vs gunzip | note |',
    '|---|---|---|---|---|---|---|---|',
    line('nydusify-ts convert', rows.ours, `registry → RAFS v6 blobs pushed to the registry; default on ${availableParallelism()} cores: ${defaultWorkers ? 'layers in worker threads' : 'layers on the main thread (workers only with > 2 cores)'}`),
    line('nydusify-ts convert --workers', rows.workers, 'each layer in a worker thread, both at once'),
    line('pipeline floor: fetch + verify + inflate + 1 MiB chunks + blake3 + zstd -3 + upload', rows.pipeline, 'registry → registry like convert, minus tar parsing, files and bootstraps: each layer fetched (sha256-verified), inflated, cut into 1 MiB chunks, blake3-digested, compressed on the thread pool and uploaded, both layers at once (scripts/bench/_convert-pipeline-floor.mjs)'),
    line('compute floor: ISA-L inflate + zstd -3 in 1 MiB chunks', rows.floor, 'both layers at once on the thread pool, no tar/digests/upload, output discarded (scripts/bench/_convert-floor.mjs)'),
    line('Node gunzip of the same layers', rows.gunzip, 'both layers in parallel, output discarded (the target\'s baseline)'),
    ...(es !== undefined ? [line(`ctr-remote images convert --estargz --oci (stargz-snapshotter ${ctrVersion})`, rows.estargz, 'content store → content store, private containerd 1.6; no push')] : [`| ctr-remote --estargz | – | – | – | – | – | – | ${estargzNote} |`]),
    '',
    `Target: convert ≤ 1.4× gunzip-only time. Result: **${ratio.toFixed(2)}×** (${ratio <= 1.4 ? 'met' : 'not met'})${es !== undefined ? `; ctr-remote --estargz took ${(es / ours).toFixed(2)}× our time` : ''}. The compute floor alone (inflate + zstd level 3, the format's default, nothing else) takes ${(med(rows.floor, 'seconds') / gz).toFixed(2)}× the gunzip time and ${med(rows.floor, 'cpuSeconds').toFixed(2)} CPU-s on ${availableParallelism()} cores; the pipeline floor (what any registry-to-registry converter must do, without the tar and the bootstrap) takes ${(med(rows.pipeline, 'seconds') / gz).toFixed(2)}×, and convert takes ${(ours / med(rows.pipeline, 'seconds')).toFixed(2)}× the pipeline floor.`,
    '',
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
