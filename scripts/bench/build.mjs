#!/usr/bin/env node
// Build throughput of `nydusify-ts image create` on a Debian minbase tree against mkfs.erofs on
// the same tree and Node's gunzip of the same tar.gz (same run), and peak RSS on a synthetic
// 2 GiB / 200,000-entry layer. Prints a Markdown section.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheDir, ensureMinbase, measure, median, mib, nydusifyBin, rate, sh } from './_lib.mjs';
import { makeBigTar } from './_make-big-tar.mjs';

const RUNS = 3;
const minbase = ensureMinbase();
const treeBytes = Number(sh(`du -sb --apparent-size ${minbase.dir} | cut -f1`).trim());
const fileCount = Number(sh(`find ${minbase.dir} | wc -l`).trim());
const work = mkdtempSync(path.join(os.tmpdir(), 'nydus-bench-build-'));

const cases = [
  { name: 'nydusify-ts tar-rafs, lz4_block + blake3', input: 'tar', args: ['--type', 'tar-rafs', '--compressor', 'lz4_block', minbase.tar] },
  { name: 'nydusify-ts dir-rafs, lz4_block + blake3', input: 'tar', args: ['--type', 'dir-rafs', '--compressor', 'lz4_block', minbase.dir] },
  { name: 'nydusify-ts tar-rafs, zstd + blake3', input: 'tar', args: ['--type', 'tar-rafs', '--compressor', 'zstd', minbase.tar] },
  { name: 'nydusify-ts tar-rafs, none + sha256', input: 'tar', args: ['--type', 'tar-rafs', '--compressor', 'none', '--digester', 'sha256', minbase.tar] },
  { name: 'nydusify-ts targz-rafs (incl. gunzip), lz4_block + blake3', input: 'tar', args: ['--type', 'targz-rafs', '--compressor', 'lz4_block', minbase.tgz] },
];
const baselines = [
  { name: 'baseline: mkfs.erofs (uncompressed) of the tree', input: 'tar', cmd: 'mkfs.erofs', args: () => ['--quiet', path.join(work, 'mkfs.img'), minbase.dir] },
  { name: 'baseline: Node gunzip of the tar.gz', input: 'tar', cmd: process.execPath, args: () => ['-e', `require('stream').pipeline(require('fs').createReadStream(${JSON.stringify(minbase.tgz)}), require('zlib').createGunzip(), require('fs').createWriteStream('/dev/null'), e => { if (e) throw e })`] },
];

const results = new Map();
for (let run = 0; run < RUNS; run++) {
  // Alternate ours and the baselines so that machine noise spreads over both.
  for (const c of cases) {
    const out = path.join(work, `out-${run}`);
    const json = path.join(work, `create-${run}.json`);
    const m = measure(process.execPath, [nydusifyBin, 'image', 'create', ...c.args, '--bootstrap', path.join(out, 'boot'), '--blob-dir', path.join(out, 'blobs'), '--output-json', json], { cpu: 0 });
    // The builder's own time (source opened to bootstrap written), without Node start-up and module loading.
    m.buildSeconds = JSON.parse(readFileSync(json, 'utf8')).durationMs / 1000;
    rmSync(out, { recursive: true, force: true });
    (results.get(c.name) ?? results.set(c.name, []).get(c.name)).push(m);
  }
  for (const b of baselines) {
    const m = measure(b.cmd, b.args(), { cpu: 0 });
    rmSync(path.join(work, 'mkfs.img'), { force: true });
    (results.get(b.name) ?? results.set(b.name, []).get(b.name)).push(m);
  }
}

// Memory bound: a 2 GiB, 200,000-entry layer.
const bigTar = path.join(cacheDir, 'synthetic-2g-200k.tar');
if (!existsSync(bigTar)) {
  process.stderr.write('bench: generating the synthetic 2 GiB / 200k-entry tar (once, cached)\n');
  await makeBigTar(bigTar + '.tmp', { totalBytes: 2 * 2 ** 30, entries: 200_000 });
  sh(`mv ${bigTar}.tmp ${bigTar}`);
}
const bigBytes = statSync(bigTar).size;
const bigOut = path.join(work, 'big');
const big = measure(process.execPath, [nydusifyBin, 'image', 'create', '--type', 'tar-rafs', '--compressor', 'lz4_block', bigTar, '--bootstrap', path.join(bigOut, 'boot'), '--blob-dir', path.join(bigOut, 'blobs')], { cpu: 0 });
const bigBoot = statSync(path.join(bigOut, 'boot')).size;
rmSync(work, { recursive: true, force: true });

const gunzip = median(results.get(baselines[1].name).map((m) => m.seconds));
const mkfs = median(results.get(baselines[0].name).map((m) => m.seconds));
const rows = [...results].map(([name, ms]) => {
  const s = median(ms.map((m) => m.seconds));
  const rss = Math.max(...ms.map((m) => m.peakRssBytes));
  const build = ms[0].buildSeconds === undefined ? undefined : median(ms.map((m) => m.buildSeconds));
  const buildCols = build === undefined ? '– | –' : `${build.toFixed(2)} | ${rate(minbase.tarBytes, build)}`;
  return `| ${name} | ${s.toFixed(2)} | ${rate(minbase.tarBytes, s)} | ${buildCols} | ${(s / gunzip).toFixed(2)}× | ${(s / mkfs).toFixed(2)}× | ${mib(rss)} |`;
});
const lz4 = median(results.get(cases[0].name).map((m) => m.seconds));
console.log(`## Build (image create)

Input: Debian bookworm minbase from debootstrap, ${fileCount} entries, ${mib(treeBytes)} MiB of file data, tar ${mib(minbase.tarBytes)} MiB, tar.gz ${mib(minbase.tgzBytes)} MiB.
Every process pinned to one core (\`taskset -c 0\`), median of ${RUNS} alternating runs, wall time including Node start-up.
MB/s is uncompressed tar bytes per second for every row, so rows compare directly. "Process" is the whole command (Node start-up ~0.2 s included, compared with the baselines); "build phase" is the builder's own time from the command's --output-json report (source opened to bootstrap written).

| what | process s | process MB/s | build phase s | build phase MB/s | vs gunzip | vs mkfs.erofs | peak RSS MiB |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Target: lz4_block + blake3 ≥ 200 MB/s of uncompressed input on one core: **${rate(minbase.tarBytes, lz4)} MB/s** for the whole process, **${rate(minbase.tarBytes, median(results.get(cases[0].name).map((m) => m.buildSeconds)))} MB/s** in the build phase (tar-rafs).

Memory bound: a synthetic ${mib(bigBytes)} MiB tar with 200,000 entries (10 large half-random files, the rest small), tar-rafs lz4_block + blake3 on one core:
${big.seconds.toFixed(1)} s (${rate(bigBytes, big.seconds)} MB/s), **peak RSS ${mib(big.peakRssBytes)} MiB** (target ≤ 200 MB), bootstrap ${mib(bigBoot)} MiB.`);
