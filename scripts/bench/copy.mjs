#!/usr/bin/env node
// Benchmark: `nydusify-ts copy` against `skopeo copy` between two loopback docker-registry
// instances. Alternating runs, a fresh target registry for every run (skopeo's blob-info cache
// would otherwise turn repeats into cross-repo mounts), our binary started with `node` directly.
// Prints a Markdown section (## Copy) on stdout; progress goes to stderr.
//
// Env: BENCH_COPY_RUNS (default 3), BENCH_COPY_BIG_MIB (default 1100), NYDUSIFY_TS_BIN.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '@nydus-ts/registry';
import { measureProcess, pushGeneratedImage, startRegistry } from '@nydus-ts/registry/testing';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.NYDUSIFY_TS_BIN ?? join(root, 'apps/nydusify-ts/bin/nydusify-ts.js');
const runs = Number(process.env.BENCH_COPY_RUNS ?? 3);
const bigMiB = Number(process.env.BENCH_COPY_BIG_MIB ?? 1100);
const MiB = 1024 * 1024;
const log = (s) => process.stderr.write(`[bench copy] ${s}\n`);

const images = [
  { name: 'small', repo: 'bench/small', layers: [{ size: 60 * MiB }, { size: 28 * MiB }], what: '88 MiB, 2 layers (random)' },
  {
    name: 'large',
    repo: 'bench/large',
    layers: [{ size: (bigMiB - 100) * MiB }, { size: 60 * MiB }, { size: 40 * MiB, kind: 'compressible' }],
    what: `${bigMiB} MiB, 3 layers (${bigMiB - 40} MiB random, 40 MiB compressible)`,
  },
];

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtS = (ms) => (ms / 1000).toFixed(2);
const fmtMiB = (b) => (b / MiB).toFixed(1);

async function runOne(tool, source, repo) {
  const target = await startRegistry();
  try {
    const env = { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
    const m = tool === 'nydusify-ts'
      ? await measureProcess(process.execPath, [bin, 'copy', '--source', `${source.host}/${repo}:v1`, '--target', `${target.host}/${repo}:v1`, '--source-insecure', '--target-insecure'], { node: true, env })
      : await measureProcess('skopeo', ['copy', '--quiet', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${source.host}/${repo}:v1`, `docker://${target.host}/${repo}:v1`], { env });
    if (m.code !== 0) throw new Error(`${tool} failed (${m.code}): ${m.stderr.slice(0, 2000)}`);
    // Both must produce the same manifest digest as the source.
    const c = new RegistryClient({ registry: target.host, insecure: true });
    const got = await c.headManifest(repo, 'v1');
    await c.close();
    return { ...m, digest: got?.digest };
  } finally {
    await target.stop();
  }
}

async function main() {
  const skopeoVersion = execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim();
  const source = await startRegistry();
  const rows = [];
  try {
    const client = new RegistryClient({ registry: source.host, insecure: true });
    for (const img of images) {
      log(`generating ${img.what}`);
      const pushed = await pushGeneratedImage(client, img.repo, { tag: 'v1', layers: img.layers });
      img.digest = pushed.manifest.descriptor.digest;
      img.bytes = pushed.layers.reduce((n, l) => n + l.size, 0) + pushed.config.size;
    }
    await client.close();
    for (const img of images) {
      const results = { 'nydusify-ts': [], skopeo: [] };
      for (let i = 0; i < runs; i++) {
        const order = i % 2 === 0 ? ['nydusify-ts', 'skopeo'] : ['skopeo', 'nydusify-ts'];
        for (const tool of order) {
          const r = await runOne(tool, source, img.repo);
          if (r.digest !== img.digest) throw new Error(`${tool}: target digest ${r.digest} != source ${img.digest}`);
          log(`${img.name} run ${i + 1} ${tool}: ${fmtS(r.wallMs)} s, rss ${fmtMiB(r.peakRssBytes)} MiB, written ${r.writeBytes} B`);
          results[tool].push(r);
        }
      }
      const ours = results['nydusify-ts'];
      const theirs = results.skopeo;
      rows.push({
        img,
        oursMs: median(ours.map((r) => r.wallMs)),
        skopeoMs: median(theirs.map((r) => r.wallMs)),
        oursRss: Math.max(...ours.map((r) => r.peakRssBytes)),
        skopeoRss: Math.max(...theirs.map((r) => r.peakRssBytes)),
        oursWritten: Math.max(...ours.map((r) => r.writeBytes)),
        skopeoWritten: Math.max(...theirs.map((r) => r.writeBytes)),
        oursAll: ours.map((r) => fmtS(r.wallMs)).join(' / '),
        skopeoAll: theirs.map((r) => fmtS(r.wallMs)).join(' / '),
      });
    }
  } finally {
    await source.stop();
  }

  const out = [];
  out.push('## Copy', '');
  out.push('`nydusify-ts copy` vs `skopeo copy`, registry to registry, both `docker-registry` 2.8.2 on 127.0.0.1, plain HTTP.');
  out.push(`Runs alternate between the tools (${runs} each per image), every run into a freshly started target registry; our binary is started as \`node ${bin.startsWith(root) ? bin.slice(root.length + 1) : bin}\`. Time is wall-clock of the process (median), RSS is the peak (VmHWM), written is \`write_bytes\` from /proc/<pid>/io. Images are generated data (${skopeoVersion}, node ${process.version}, ${(await import('node:os')).cpus().length} CPUs).`, '');
  out.push('```');
  out.push(`node ${bin.startsWith(root) ? bin.slice(root.length + 1) : bin} copy --source SRC/REPO:v1 --target DST/REPO:v1 --source-insecure --target-insecure`);
  out.push('skopeo copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false docker://SRC/REPO:v1 docker://DST/REPO:v1');
  out.push('```', '');
  out.push('| image | nydusify-ts (s) | skopeo (s) | ratio | nydusify-ts peak RSS | skopeo peak RSS | nydusify-ts written | skopeo written | target ≤ 0.8× | runs nydusify-ts | runs skopeo |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.oursMs / r.skopeoMs;
    out.push(`| ${r.img.what} | ${fmtS(r.oursMs)} | ${fmtS(r.skopeoMs)} | ${ratio.toFixed(2)}× | ${fmtMiB(r.oursRss)} MiB | ${fmtMiB(r.skopeoRss)} MiB | ${r.oursWritten} B | ${r.skopeoWritten} B | ${ratio <= 0.8 ? 'met' : 'not met'} | ${r.oursAll} | ${r.skopeoAll} |`);
  }
  out.push('');
  out.push(`Target: ≤ 0.8× skopeo's time and 0 blob bytes written. Blob bytes per copy: ${rows.map((r) => `${r.img.name} ${fmtMiB(r.img.bytes)} MiB`).join(', ')}; the written bytes above are all the process wrote (no blob data; skopeo's include its blob-info cache).`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`[bench copy] failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
