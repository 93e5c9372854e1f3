#!/usr/bin/env node
// Build throughput of `nydusify-ts image create` on a Debian minbase tree against mkfs.erofs on
// the same tree, Node's gunzip of the same tar.gz and the native-work floor (_build-floor.mjs)
// (same run), and peak RSS on a synthetic 2 GiB / 200,000-entry layer. Prints a Markdown section.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir, ensureMinbase, median, mib, nydusifyBin, rate, repoRoot, sh } from './_lib.mjs';
import { makeBigTar } from './_make-big-tar.mjs';

const RUNS = 5;

// NODE_EXTRA_CA_CERTS (which some sandboxes set for every process) makes each Node start build
// its root certificate store, ~0.05 s of CPU that an image build never needs: removed for
// every run (ours and the Node baselines alike), as the copy benchmark does.
const benchEnv = { ...process.env };
const extraCaCerts = benchEnv.NODE_EXTRA_CA_CERTS;
delete benchEnv.NODE_EXTRA_CA_CERTS;

/** Runs a command pinned to CPU 0 under GNU time: wall seconds, CPU seconds (user + system), peak RSS. */
function measure(cmd, args, env = benchEnv) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', 'taskset', '-c', '0', cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], cwd: repoRoot, env });
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec((r.stderr ?? '').trim().split('\n').pop() ?? '');
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return { seconds: Number(m[1]), cpuSeconds: Number(m[2]) + Number(m[3]), peakRssBytes: Number(m[4]) * 1024 };
}
const floorScript = path.join(path.dirname(fileURLToPath(import.meta.url)), '_build-floor.mjs');
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
  { name: 'floor: the native work alone (read, blake3, CRC-32C, lz4, sha256, write, fsync)', input: 'tar', cmd: process.execPath, args: () => [floorScript, minbase.tar, path.join(work, 'floor.blob')] },
];

const loadBefore = os.loadavg()[0];
const results = new Map();
for (let run = 0; run < RUNS; run++) {
  // Alternate ours and the baselines so that machine noise spreads over both.
  for (const c of cases) {
    const out = path.join(work, `out-${run}`);
    const json = path.join(work, `create-${run}.json`);
    const m = measure(process.execPath, [nydusifyBin, 'image', 'create', ...c.args, '--bootstrap', path.join(out, 'boot'), '--blob-dir', path.join(out, 'blobs'), '--output-json', json]);
    // The builder's own time (source opened to bootstrap written), without Node start-up and module loading.
    m.buildSeconds = JSON.parse(readFileSync(json, 'utf8')).durationMs / 1000;
    rmSync(out, { recursive: true, force: true });
    (results.get(c.name) ?? results.set(c.name, []).get(c.name)).push(m);
  }
  for (const b of baselines) {
    const m = measure(b.cmd, b.args());
    rmSync(path.join(work, 'mkfs.img'), { force: true });
    rmSync(path.join(work, 'floor.blob'), { force: true });
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
const big = measure(process.execPath, [nydusifyBin, 'image', 'create', '--type', 'tar-rafs', '--compressor', 'lz4_block', bigTar, '--bootstrap', path.join(bigOut, 'boot'), '--blob-dir', path.join(bigOut, 'blobs')]);
const bigBoot = statSync(path.join(bigOut, 'boot')).size;
rmSync(work, { recursive: true, force: true });

const gunzip = median(results.get(baselines[1].name).map((m) => m.seconds));
const mkfs = median(results.get(baselines[0].name).map((m) => m.seconds));
const floor = median(results.get(baselines[2].name).map((m) => m.seconds));
const rows = [...results].map(([name, ms]) => {
  const s = median(ms.map((m) => m.seconds));
  const cpu = median(ms.map((m) => m.cpuSeconds));
  const rss = Math.max(...ms.map((m) => m.peakRssBytes));
  const build = ms[0].buildSeconds === undefined ? undefined : median(ms.map((m) => m.buildSeconds));
  const buildCols = build === undefined ? '– | –' : `${build.toFixed(2)} | ${rate(minbase.tarBytes, build)}`;
  return `| ${name} | ${s.toFixed(2)} | ${rate(minbase.tarBytes, s)} | ${cpu.toFixed(2)} | ${buildCols} | ${(s / gunzip).toFixed(2)}× | ${(s / mkfs).toFixed(2)}× | ${(s / floor).toFixed(2)}× | ${mib(rss)} |`;
});
const lz4 = median(results.get(cases[0].name).map((m) => m.seconds));
const lz4Build = median(results.get(cases[0].name).map((m) => m.buildSeconds));
const nodeStart = median([0, 1, 2].map(() => measure(process.execPath, ['-e', '0']).seconds));
const nodeStartCa = extraCaCerts ? median([0, 1, 2].map(() => measure(process.execPath, ['-e', '0'], { ...benchEnv, NODE_EXTRA_CA_CERTS: extraCaCerts }).seconds)) : undefined;
console.log(`## Build (image create)

Input: Debian bookworm minbase from debootstrap, ${fileCount} entries, ${mib(treeBytes)} MiB of file data, tar ${mib(minbase.tarBytes)} MiB, tar.gz ${mib(minbase.tgzBytes)} MiB.
Every process pinned to one core (\`taskset -c 0\`), median of ${RUNS} alternating runs, wall time including Node start-up; "CPU s" is user + system time (robust against other load on the machine, which wall time is not). ${extraCaCerts ? `Every run had NODE_EXTRA_CA_CERTS (set by the environment) removed: with it \`node -e 0\` takes ${nodeStartCa.toFixed(2)} s instead of ${nodeStart.toFixed(2)} s (Node builds its root certificate store at start-up).` : 'NODE_EXTRA_CA_CERTS was not set.'}
MB/s is uncompressed tar bytes per second for every row, so rows compare directly. "Process" is the whole command (Node start-up included, compared with the baselines); "build phase" is the builder's own time from the command's --output-json report (source opened to bootstrap written).
The floor row is \`scripts/bench/_build-floor.mjs\`: the same native work as a tar-rafs lz4_block + blake3 build (the tar read, blake3, CRC-32C and LZ4 of every 1 MiB chunk, sha256 and write of the blob, fsync) with nothing else (no PAX, names, tree, dedup or bootstrap), a lower bound for any builder on these libraries.

| what | process s | process MB/s | CPU s | build phase s | build phase MB/s | vs gunzip | vs mkfs.erofs | vs floor | peak RSS MiB |
|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Target: lz4_block + blake3 ≥ 200 MB/s of uncompressed input on one core: **${rate(minbase.tarBytes, lz4)} MB/s** for the whole process, **${rate(minbase.tarBytes, lz4Build)} MB/s** in the build phase (tar-rafs).
The floor alone reaches ${rate(minbase.tarBytes, floor)} MB/s as a whole process (Node start-up ${nodeStart.toFixed(2)} s of it): 200 MB/s leaves ${Math.max(0, minbase.tarBytes / 200e6 - floor).toFixed(2)} s for everything that is not native work (module loading, tar and PAX parsing, the tree, the bootstrap, GC).

Machine load (1-minute load average, other work on the same 2 cores) ${loadBefore.toFixed(1)} at the start of the runs and ${os.loadavg()[0].toFixed(1)} at the end: wall times above include waiting for the CPU, CPU times do not.

Memory bound: a synthetic ${mib(bigBytes)} MiB tar with 200,000 entries (10 large half-random files, the rest small), tar-rafs lz4_block + blake3 on one core:
${big.seconds.toFixed(1)} s (${rate(bigBytes, big.seconds)} MB/s, CPU ${big.cpuSeconds.toFixed(1)} s), **peak RSS ${mib(big.peakRssBytes)} MiB** (target ≤ 200 MB), bootstrap ${mib(bigBoot)} MiB.`);
