#!/usr/bin/env node
// Benchmark: `nydusify-ts copy` against `skopeo copy` between two loopback docker-registry
// instances. Alternating runs, a fresh target registry for every run (skopeo's blob-info cache
// would otherwise turn repeats into cross-repo mounts), our binary started with `node` directly.
// A third, informational contender is the floor for a Node process: a bare node:http relay (GET
// piped into a monolithic PUT, every blob at once, no digest check, no retries, no start-up
// beyond node itself). Prints a Markdown section (## Copy) on stdout; progress goes to stderr.
//
// Env: BENCH_COPY_RUNS (default 5), BENCH_COPY_BIG_MIB (default 1100), NYDUSIFY_TS_BIN.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '@nydus-ts/registry';
import { measureProcess, pushGeneratedImage, startRegistry } from '@nydus-ts/registry/testing';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = process.env.NYDUSIFY_TS_BIN ?? join(root, 'apps/nydusify-ts/bin/nydusify-ts.js');
const binShown = bin.startsWith(root) ? bin.slice(root.length + 1) : bin;
const runs = Number(process.env.BENCH_COPY_RUNS ?? 5);
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

// The relay floor (run with `node -e`; argv: source host, target host, repository, tag).
const relayScript = `
const http = require('node:http');
const [src, dst, repo, tag] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true });
const send = (method, url, headers, body) => new Promise((ok, fail) => {
  const req = http.request(url, { method, headers, agent }, ok).on('error', fail);
  if (body && typeof body.pipe === 'function') body.pipe(req); else req.end(body);
});
const drain = async (res, want) => { for await (const _ of res); if (!want.includes(res.statusCode)) throw new Error(res.statusCode + ' ' + res.req.path); };
(async () => {
  const m = await send('GET', 'http://' + src + '/v2/' + repo + '/manifests/' + tag, { accept: 'application/vnd.oci.image.manifest.v1+json' });
  const parts = []; for await (const c of m) parts.push(c);
  const bytes = Buffer.concat(parts); const manifest = JSON.parse(bytes);
  await Promise.all([manifest.config, ...manifest.layers].map(async (d) => {
    const post = await send('POST', 'http://' + dst + '/v2/' + repo + '/blobs/uploads/', { 'content-length': '0' });
    await drain(post, [202]);
    const url = new URL(post.headers.location, 'http://' + dst); url.searchParams.set('digest', d.digest);
    const get = await send('GET', 'http://' + src + '/v2/' + repo + '/blobs/' + d.digest, {});
    await drain(await send('PUT', url, { 'content-type': 'application/octet-stream', 'content-length': String(d.size) }, get), [201]);
  }));
  await drain(await send('PUT', 'http://' + dst + '/v2/' + repo + '/manifests/' + tag, { 'content-type': m.headers['content-type'] }, bytes), [201]);
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

const tools = ['nydusify-ts', 'skopeo', 'relay'];

// Every tool runs without the proxy variables (loopback only) and without NODE_EXTRA_CA_CERTS,
// which this sandbox sets for every process: with it, each Node process builds its root
// certificate store at start-up (~40 ms; skopeo does not read it). Both effects are reported.
const benchEnv = { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
const extraCaCerts = benchEnv.NODE_EXTRA_CA_CERTS;
delete benchEnv.NODE_EXTRA_CA_CERTS;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtS = (ms) => (ms / 1000).toFixed(2);
const fmtMiB = (b) => (b / MiB).toFixed(1);

/** utime+stime of a running process, ms (USER_HZ 100). */
const processCpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

async function runOne(tool, source, repo) {
  const target = await startRegistry();
  try {
    const env = benchEnv;
    const targetCpuBefore = processCpuMs(target.pid);
    const m =
      tool === 'nydusify-ts'
        ? await measureProcess(process.execPath, [bin, 'copy', '--source', `${source.host}/${repo}:v1`, '--target', `${target.host}/${repo}:v1`, '--source-insecure', '--target-insecure'], { node: true, env })
        : tool === 'skopeo'
          ? await measureProcess('skopeo', ['copy', '--quiet', '--preserve-digests', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${source.host}/${repo}:v1`, `docker://${target.host}/${repo}:v1`], { env })
          : await measureProcess(process.execPath, ['-e', relayScript, source.host, target.host, repo, 'v1'], { node: true, env });
    if (m.code !== 0) throw new Error(`${tool} failed (${m.code}): ${m.stderr.slice(0, 2000)}`);
    const targetCpuMs = processCpuMs(target.pid) - targetCpuBefore;
    // Each must produce the same manifest digest as the source.
    const c = new RegistryClient({ registry: target.host, insecure: true });
    const got = await c.headManifest(repo, 'v1');
    await c.close();
    return { ...m, targetCpuMs, digest: got?.digest };
  } finally {
    await target.stop();
  }
}

/** Median wall time of a command without network (start-up only), `n` runs. */
async function startupMs(command, args, env = benchEnv, n = 9) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const m = await measureProcess(command, args, { env });
    if (m.code !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${m.stderr}`);
    times.push(m.wallMs);
  }
  return median(times);
}

async function main() {
  const skopeoVersion = execFileSync('skopeo', ['--version'], { encoding: 'utf8' }).trim();
  const loadBefore = os.loadavg()[0];
  const nodeStart = await startupMs(process.execPath, ['-e', '0']);
  const nodeStartCa = extraCaCerts ? await startupMs(process.execPath, ['-e', '0'], { ...benchEnv, NODE_EXTRA_CA_CERTS: extraCaCerts }) : undefined;
  const copyHelp = await startupMs(process.execPath, [bin, 'copy', '--help']);
  const skopeoHelp = await startupMs('skopeo', ['copy', '--help']);
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
      const results = Object.fromEntries(tools.map((t) => [t, []]));
      for (let i = 0; i < runs; i++) {
        // Rotate the order so no tool always runs first (or right after another's cleanup).
        const order = tools.map((_, k) => tools[(k + i) % tools.length]);
        for (const tool of order) {
          const r = await runOne(tool, source, img.repo);
          if (r.digest !== img.digest) throw new Error(`${tool}: target digest ${r.digest} != source ${img.digest}`);
          log(`${img.name} run ${i + 1} ${tool}: ${fmtS(r.wallMs)} s, cpu ${fmtS(r.cpuMs)} s, target registry cpu ${fmtS(r.targetCpuMs)} s, rss ${fmtMiB(r.peakRssBytes)} MiB, written ${r.writeBytes} B`);
          results[tool].push(r);
        }
      }
      const stat = (tool) => {
        const rs = results[tool];
        return {
          ms: median(rs.map((r) => r.wallMs)),
          rss: Math.max(...rs.map((r) => r.peakRssBytes)),
          written: Math.max(...rs.map((r) => r.writeBytes)),
          cpu: median(rs.map((r) => r.cpuMs)),
          targetCpu: median(rs.map((r) => r.targetCpuMs)),
          all: rs.map((r) => fmtS(r.wallMs)).join(' / '),
        };
      };
      rows.push({ img, ours: stat('nydusify-ts'), skopeo: stat('skopeo'), relay: stat('relay') });
    }
  } finally {
    await source.stop();
  }
  const loadAfter = os.loadavg()[0];

  const out = [];
  out.push('## Copy', '');
  out.push('`nydusify-ts copy` vs `skopeo copy`, registry to registry, both `docker-registry` 2.8.2 on 127.0.0.1, plain HTTP.');
  out.push(
    `Runs rotate between the tools (${runs} each per image), every run into a freshly started target registry; our binary is started as \`node ${binShown}\`. ` +
      'Time is wall-clock of the process (median), RSS is the peak (VmHWM), written is `write_bytes` from /proc/<pid>/io, CPU is user+system time (median) of the copying process and of the target registry during the copy. ' +
      `"Relay" is the floor for a Node process: a bare node:http GET piped into a monolithic PUT per blob, all at once, with no digest check, no retries and nothing loaded beyond node. Images are generated data (${skopeoVersion}, node ${process.version}, ${os.cpus().length} CPUs, load average ${loadBefore.toFixed(1)} before / ${loadAfter.toFixed(1)} after).`,
    '',
  );
  out.push('```');
  out.push(`node ${binShown} copy --source SRC/REPO:v1 --target DST/REPO:v1 --source-insecure --target-insecure`);
  out.push('skopeo copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false docker://SRC/REPO:v1 docker://DST/REPO:v1');
  out.push('```', '');
  out.push('| image | nydusify-ts (s) | skopeo (s) | ratio | target ≤ 0.8× | relay floor (s) | relay / skopeo | CPU s nydusify-ts / skopeo / relay | target registry CPU s (in nydusify-ts / skopeo runs) | peak RSS nydusify-ts / skopeo | written nydusify-ts / skopeo | runs nydusify-ts | runs skopeo |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.ours.ms / r.skopeo.ms;
    out.push(
      `| ${r.img.what} | ${fmtS(r.ours.ms)} | ${fmtS(r.skopeo.ms)} | ${ratio.toFixed(2)}× | ${ratio <= 0.8 ? 'met' : 'not met'} | ${fmtS(r.relay.ms)} | ${(r.relay.ms / r.skopeo.ms).toFixed(2)}× | ` +
        `${fmtS(r.ours.cpu)} / ${fmtS(r.skopeo.cpu)} / ${fmtS(r.relay.cpu)} | ${fmtS(r.ours.targetCpu)} / ${fmtS(r.skopeo.targetCpu)} | ${fmtMiB(r.ours.rss)} / ${fmtMiB(r.skopeo.rss)} MiB | ${r.ours.written} / ${r.skopeo.written} B | ${r.ours.all} | ${r.skopeo.all} |`,
    );
  }
  out.push('');
  out.push(
    `Start-up alone (median of 9, no network): \`node -e 0\` ${fmtS(nodeStart)} s, \`nydusify-ts copy --help\` ${fmtS(copyHelp)} s, \`skopeo copy --help\` ${fmtS(skopeoHelp)} s. ` +
      (nodeStartCa !== undefined
        ? `Every run had NODE_EXTRA_CA_CERTS (set by the environment to ${extraCaCerts}) removed, as the proxy variables: with it \`node -e 0\` takes ${fmtS(nodeStartCa)} s (Node builds its root certificate store at start-up; skopeo does not read the variable).`
        : 'NODE_EXTRA_CA_CERTS was not set.'),
  );
  out.push(`Target: ≤ 0.8× skopeo's time and 0 blob bytes written. Blob bytes per copy: ${rows.map((r) => `${r.img.name} ${fmtMiB(r.img.bytes)} MiB`).join(', ')}; the written bytes above are all the process wrote (no blob data; skopeo's include its blob-info cache).`);
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`[bench copy] failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
});
