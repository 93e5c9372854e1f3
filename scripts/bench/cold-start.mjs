#!/usr/bin/env node
// Benchmark: cold start of a node application image (~345 MB compressed: Debian minbase, this
// Node.js and ~1.1 GB of npm packages) through containerd 1.6, to the first line of output, for
//   - OCI: `ctr images pull` + `ctr run` with containerd's overlayfs snapshotter (what users do),
//   - native Nydus and zran: `nydusd-ts pull` + `ctr run` with the nydus-ts snapshotter,
// with the registry's port limited to 3 MB/s (tc htb on lo) and unlimited; two workloads
// (`node -v`, and a script that requires typescript, webpack, babel and others); bytes the
// registry sent (tc's counter); and the floor: the compressed bytes of the chunks the workload
// reads (the daemon's metrics) at 3 MB/s plus the start of the same container from a local,
// fully pulled image. Every run starts cold: images removed (containerd's GC empties the content
// store, our snapshots and blob cache), page cache dropped. Writes docs/cold-start.svg (the
// chart) and prints a Markdown section on stdout; progress on stderr.
//
// Env: BENCH_COLD_RUNS (5), BENCH_COLD_OCI_THROTTLED_RUNS (3), BENCH_COLD_RATE (3e6 bytes/s);
// for experiments (the report then lacks rows, docs/cold-start.svg is not written): BENCH_COLD_KINDS (oci,native,zran),
// BENCH_COLD_CONDITIONS (throttled,unthrottled), BENCH_COLD_NYDUSD_CONFIG (a --nydusd-config file),
// BENCH_COLD_PULL_LOG (a --log-level for nydusd-ts pull: its log goes to stderr), BENCH_COLD_WORKLOADS
// (the workloads' last arguments: -v,/app/start.js); BENCH_COLD_SAVE (write this run's raw results to a
// JSON file), BENCH_COLD_REUSE (JSON files of earlier runs of the same image whose results join this
// run's: e.g. the slow OCI rows measured once, the Nydus rows again after a change; the report and
// chart are complete when the joined results are).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRegistry } from '@nydus-ts/registry/testing';
import { NydusdClient, SnapshotsClient } from '@nydus-ts/snapshotter';
import { pushImage, startContainerd, stopEverythingUnder, waitForSnapshotter } from '@nydus-ts/snapshotter/testing';
import { ensureMinbase, median, nydusifyBin, repoRoot } from './_lib.mjs';
import { ensureNodeLayer } from './_node-image.mjs';
import { ensureNodeAppLayer, layerFile } from './_node-app-image.mjs';
import { throttlePort } from './_throttle.mjs';

const RUNS = Number(process.env.BENCH_COLD_RUNS ?? 5);
const OCI_THROTTLED_RUNS = Number(process.env.BENCH_COLD_OCI_THROTTLED_RUNS ?? 3);
const RATE = Number(process.env.BENCH_COLD_RATE ?? 3e6);
const KINDS = (process.env.BENCH_COLD_KINDS ?? 'native,zran,oci').split(',');
const CONDITIONS = (process.env.BENCH_COLD_CONDITIONS ?? 'throttled,unthrottled').split(',');
const NYDUSD_CONFIG = process.env.BENCH_COLD_NYDUSD_CONFIG;
const PULL_LOG = process.env.BENCH_COLD_PULL_LOG;
const WORKLOADS = process.env.BENCH_COLD_WORKLOADS?.split(',');
const nydusdBin = join(repoRoot, 'apps/nydusd-ts/bin/nydusd-ts.js');
const log = (s) => process.stderr.write(`[bench cold-start] ${s}\n`);
// (as in the other benchmarks: no per-process certificate store built from NODE_EXTRA_CA_CERTS)
delete process.env.NODE_EXTRA_CA_CERTS;
const MB = 1e6;

function run(cmd, args, { capture = false, stderr = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', capture ? 'pipe' : 'ignore', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stderr ? err : out) : reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${err.slice(-2000)}`))));
  });
}

/** Runs a command and resolves with the seconds until its first line of stdout (then lets it finish). */
function firstLine(cmd, args) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let at;
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (at === undefined && out.includes('\n')) at = Number(process.hrtime.bigint() - started) / 1e9;
    });
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 || at === undefined) reject(new Error(`${args.join(' ')} exited with ${code} (output ${JSON.stringify(out.slice(0, 200))}): ${err.slice(-2000)}`));
      else resolve({ seconds: at, line: out.split('\n')[0] });
    });
  });
}

const dropCaches = () => run('bash', ['-c', 'sync && echo 3 > /proc/sys/vm/drop_caches']);

function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function main() {
  log('images: minbase, node, application layer (cached)');
  const minbase = ensureMinbase();
  const node = ensureNodeLayer();
  const app = await ensureNodeAppLayer(log);
  const layers = [await layerFile(minbase.tar, minbase.tgz), await layerFile(node.tar, node.tgz), await layerFile(app.tar, app.tgz)];
  const imageBytes = layers.reduce((a, l) => a + l.size, 0);
  log(`image: ${(imageBytes / MB).toFixed(1)} MB compressed in ${layers.length} layers`);

  const work = mkdtempSync(join(tmpdir(), 'bench-cold-'));
  const cleanups = [() => rmSync(work, { recursive: true, force: true })];
  const results = [];
  let conversions;
  let floor;
  try {
    const registry = await startRegistry();
    cleanups.push(() => registry.stop());
    const host = registry.host;
    const throttle = throttlePort(Number(host.split(':')[1]));
    cleanups.push(() => throttle.remove());
    const oci = await pushImage({ registry: host, repository: 'bench/node-app', tag: 'oci', layers, config: { cmd: ['node'], workingDir: '/app', env: ['PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin'] } });
    const refs = { oci: oci.ref, native: `${host}/bench/node-app:native`, zran: `${host}/bench/node-app:zran` };
    conversions = {};
    for (const [kind, extra] of [['native', []], ['zran', ['--oci-ref']]].filter(([k]) => KINDS.includes(k))) {
      log(`convert ${kind}`);
      const t = Date.now();
      await run(process.execPath, [nydusifyBin, 'convert', '--source', refs.oci, '--target', refs[kind], '--source-insecure', '--target-insecure', ...extra]);
      conversions[kind] = (Date.now() - t) / 1000;
    }

    // the snapshotter (shared daemon, as deployed) and a private containerd
    const root = join(work, 'snapshotter');
    const sock = join(work, 'snapshotter.sock');
    const snap = spawn(process.execPath, [nydusdBin, 'snapshotter', '--root', root, '--address', sock, '--log-level', 'warn', ...(NYDUSD_CONFIG ? ['--nydusd-config', NYDUSD_CONFIG] : [])], { stdio: ['ignore', 'ignore', 'pipe'] });
    let snapErr = '';
    snap.stderr.setEncoding('utf8').on('data', (d) => (snapErr = (snapErr + d).slice(-20000)));
    cleanups.push(() => stopEverythingUnder(work));
    cleanups.push(() => new Promise((r) => (snap.exitCode !== null ? r() : (snap.once('exit', r), snap.kill('SIGTERM')))));
    for (let i = 0; !existsSync(sock); i++) {
      if (snap.exitCode !== null || i > 600) throw new Error(`snapshotter did not start: ${snapErr}`);
      await sleep(100);
    }
    const containerd = await startContainerd({ dir: join(work, 'containerd'), proxyPlugins: { 'nydus-ts': sock } });
    cleanups.push(() => containerd.stop());
    await waitForSnapshotter(containerd, 'nydus-ts');
    const direct = new SnapshotsClient({ address: sock });
    cleanups.push(() => direct.close());
    const daemon = new NydusdClient(join(root, 'socket/shared/api.sock'));
    const ctr = (...args) => run('ctr', ['--address', containerd.address, ...args], { capture: true });

    /** Removes every image; waits until containerd's GC emptied the content store, our snapshots and cache. */
    async function reset() {
      for (const ref of Object.values(refs)) await containerd.ctr(['images', 'rm', '--sync', ref]);
      for (let i = 0; ; i++) {
        const content = (await ctr('content', 'ls', '-q')).trim();
        const ours = (await direct.list()).filter((s) => !s.name.includes('connectiontest'));
        const cache = readdirSync(join(root, 'cache'));
        const ovl = (await ctr('snapshots', '--snapshotter', 'overlayfs', 'ls')).trim().split('\n').length - 1;
        if (!content && ours.length === 0 && cache.length === 0 && ovl === 0) break;
        if (i > 300) throw new Error(`state not cold after removing the images: content ${content.split('\n').length}, snapshots ${ours.length}, cache ${cache.length}, overlayfs ${ovl}`);
        await sleep(100);
      }
      await dropCaches();
    }

    const workloads = [
      { name: 'node -v', args: ['node', '-v'] },
      { name: 'require 6 big modules', args: ['node', '/app/start.js'] },
    ].filter((w) => !WORKLOADS || WORKLOADS.includes(w.args.at(-1)));
    let seq = 0;
    async function coldStart(kind, workload) {
      await reset();
      const before = throttle.bytesSent();
      const started = process.hrtime.bigint();
      if (kind === 'oci') await ctr('images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', refs.oci);
      else if (PULL_LOG) log((await run(process.execPath, [nydusdBin, 'pull', '--address', containerd.address, '--snapshotter', 'nydus-ts', '--plain-http', '--log-level', PULL_LOG, refs[kind]], { stderr: true })).trim());
      else await run(process.execPath, [nydusdBin, 'pull', '--address', containerd.address, '--snapshotter', 'nydus-ts', '--plain-http', refs[kind]]);
      const pullSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      const snapshotter = kind === 'oci' ? 'overlayfs' : 'nydus-ts';
      const first = await firstLine('ctr', ['--address', containerd.address, 'run', '--rm', '--snapshotter', snapshotter, refs[kind], `cold-${++seq}`, ...workload.args]);
      const r = { kind, workload: workload.name, seconds: pullSeconds + first.seconds, pullSeconds, bytes: throttle.bytesSent() - before, line: first.line };
      if (kind !== 'oci') {
        const mounts = Object.keys(await daemonBackends(daemon));
        const m = await daemon.backendMetrics(mounts[0]);
        const cache = await daemon.blobcacheMetrics(mounts[0]).catch(() => ({}));
        r.daemonBytes = Number(m.read_amount_total ?? 0);
        r.touchedBytes = Number(m.touched_bytes ?? cache.touched_bytes ?? NaN);
      }
      return r;
    }

    for (const [condition, rate] of [['3 MB/s', RATE], ['unthrottled', null]]) {
      if (!CONDITIONS.includes(rate === null ? 'unthrottled' : 'throttled')) continue;
      throttle.setRate(rate);
      for (const kind of KINDS) {
        for (const workload of workloads) {
          const n = kind === 'oci' && rate !== null ? OCI_THROTTLED_RUNS : RUNS;
          for (let i = 0; i < n; i++) {
            const r = await coldStart(kind, workload);
            r.condition = condition;
            results.push(r);
            log(`${condition} ${kind} "${workload.name}" run ${i + 1}/${n}: ${r.seconds.toFixed(2)} s (pull ${r.pullSeconds.toFixed(2)} s), ${(r.bytes / MB).toFixed(1)} MB, first line ${JSON.stringify(r.line)}`);
          }
        }
      }
    }

    // floor: the container from a local, fully pulled image (overlayfs), page cache dropped
    throttle.setRate(null);
    await reset();
    await ctr('images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', refs.oci);
    floor = {};
    for (const workload of workloads) {
      const local = [];
      for (let i = 0; i < RUNS; i++) {
        await dropCaches();
        local.push((await firstLine('ctr', ['--address', containerd.address, 'run', '--rm', '--snapshotter', 'overlayfs', refs.oci, `local-${++seq}`, ...workload.args])).seconds);
      }
      floor[workload.name] = { localSeconds: median(local) };
    }
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log(`clean-up: ${err.message}`);
      }
    }
  }
  if (process.env.BENCH_COLD_SAVE) writeFileSync(process.env.BENCH_COLD_SAVE, JSON.stringify({ date: new Date().toISOString(), results, floor, imageBytes, conversions }, null, 1));
  for (const file of (process.env.BENCH_COLD_REUSE ?? '').split(',').filter(Boolean)) {
    const earlier = JSON.parse(readFileSync(file, 'utf8'));
    if (earlier.imageBytes !== imageBytes) throw new Error(`${file}: results of another image (${earlier.imageBytes} bytes, this one ${imageBytes})`);
    const fresh = new Set(results.map((r) => `${r.condition}|${r.workload}|${r.kind}`));
    results.push(...earlier.results.filter((r) => !fresh.has(`${r.condition}|${r.workload}|${r.kind}`)));
    for (const [kind, seconds] of Object.entries(earlier.conversions ?? {})) conversions[kind] ??= seconds;
    log(`joined ${earlier.results.length} results of ${earlier.date} from ${file}`);
  }
  report({ results, floor, imageBytes, layers, conversions });
}

async function daemonBackends(daemon) {
  // GET /api/v1/daemon/backend: mountpoint → backend (one image mounted at a time here)
  const res = await fetchUnix(daemon.apiSocket, '/api/v1/daemon/backend');
  return res;
}

function fetchUnix(socketPath, path) {
  return import('node:http').then(
    ({ request }) =>
      new Promise((resolve, reject) => {
        const req = request({ socketPath, path, host: 'unix' }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`${path}: HTTP ${res.statusCode} ${body}`))));
        });
        req.on('error', reject);
        req.end();
      }),
  );
}

function report({ results, floor, imageBytes, layers, conversions }) {
  const groups = new Map();
  for (const r of results) {
    const key = `${r.condition}|${r.workload}|${r.kind}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  const stat = (condition, workload, kind) => {
    const rs = groups.get(`${condition}|${workload}|${kind}`) ?? [];
    const secs = rs.map((r) => r.seconds);
    return {
      n: rs.length,
      median: median(secs),
      p95: percentile(secs, 95),
      pull: median(rs.map((r) => r.pullSeconds)),
      bytes: median(rs.map((r) => r.bytes)),
      touched: median(rs.map((r) => r.touchedBytes).filter((b) => Number.isFinite(b))),
      daemonBytes: median(rs.map((r) => r.daemonBytes ?? 0)),
    };
  };
  const label = { oci: 'OCI (ctr images pull + overlayfs)', native: 'Nydus native (nydusd-ts pull)', zran: 'Nydus zran (nydusd-ts pull)' };
  const lines = [];
  lines.push('## Cold start through containerd (nydus-ts snapshotter)');
  lines.push('');
  lines.push(`Image: Debian bookworm minbase + Node.js ${process.version} + an application layer with ${19} npm packages installed at build time (next, @swc/core, typescript, aws-sdk, @tensorflow/tfjs, monaco-editor, webpack, babel, …): ` +
    `${(imageBytes / MB).toFixed(1)} MB compressed (${layers.map((l) => (l.size / MB).toFixed(1)).join(' + ')} MB). Cold start = pull + \`ctr run\` until the first line of output; every run from a cold state (images removed and garbage-collected, blob cache empty, page cache dropped). ` +
    `Registry bytes from tc's counter on the registry port; 3 MB/s = tc htb on that port. Medians of ${RUNS} runs (${OCI_THROTTLED_RUNS} for OCI at 3 MB/s), p95 = slowest. Conversions: native ${conversions.native?.toFixed(0)} s, zran ${conversions.zran?.toFixed(0)} s.`);
  lines.push('');
  lines.push('| network | workload | image | cold start median (s) | p95 (s) | of which pull (s) | × OCI | MB from the registry | % of image |');
  lines.push('|---|---|---|---:|---:|---:|---:|---:|---:|');
  const chart = [];
  for (const condition of ['3 MB/s', 'unthrottled']) {
    for (const workload of Object.keys(floor)) {
      const ociStat = stat(condition, workload, 'oci');
      for (const kind of ['oci', 'native', 'zran']) {
        const s = stat(condition, workload, kind);
        if (s.n === 0) continue; // (not run: BENCH_COLD_KINDS / BENCH_COLD_CONDITIONS)
        lines.push(`| ${condition} | \`${workload}\` | ${label[kind]} | ${s.median.toFixed(2)} | ${s.p95.toFixed(2)} | ${s.pull.toFixed(2)} | ${(s.median / ociStat.median).toFixed(3)} | ${(s.bytes / MB).toFixed(1)} | ${((100 * s.bytes) / imageBytes).toFixed(1)} |`);
        chart.push({ condition, workload, name: kind === 'oci' ? 'OCI' : kind === 'native' ? 'Nydus' : 'zran', seconds: s.median });
      }
      if (condition === '3 MB/s' && stat(condition, workload, 'native').n > 0) {
        const nydus = stat(condition, workload, 'native');
        const touched = Number.isFinite(nydus.touched) ? nydus.touched : nydus.daemonBytes;
        const f = touched / RATE + floor[workload].localSeconds;
        floor[workload].seconds = f;
        floor[workload].touched = touched;
        lines.push(`| ${condition} | \`${workload}\` | floor: ${(touched / MB).toFixed(1)} MB of chunks read ÷ 3 MB/s + ${floor[workload].localSeconds.toFixed(2)} s local start | ${f.toFixed(2)} | | | ${(f / ociStat.median).toFixed(3)} | | |`);
        chart.push({ condition, workload, name: 'floor', seconds: f });
      }
    }
  }
  lines.push('');
  const t = (c, w, k) => stat(c, w, k).median / stat(c, w, 'oci').median;
  const w0 = Object.keys(floor)[0];
  const touchedNote = results.some((r) => Number.isFinite(r.touchedBytes)) ? 'the daemon\'s touched_bytes (compressed bytes of the chunks reads needed)' : 'the daemon\'s backend read_amount_total (chunks fetched, including merged neighbours: an upper bound of what was read)';
  const complete = results.length === RUNS * 2 * 2 * 2 + OCI_THROTTLED_RUNS * 2 + RUNS * 2;
  if (complete) lines.push(`Targets at 3 MB/s (\`${w0}\`): Nydus ≤ 0.08× OCI: ${t('3 MB/s', w0, 'native').toFixed(3)}×; zran ≤ 0.11×: ${t('3 MB/s', w0, 'zran').toFixed(3)}×; bytes ≤ 5% (Nydus): ${((100 * stat('3 MB/s', w0, 'native').bytes) / imageBytes).toFixed(1)}%, ≤ 8% (zran): ${((100 * stat('3 MB/s', w0, 'zran').bytes) / imageBytes).toFixed(1)}%; Nydus ≤ 1.5× floor: ${(stat('3 MB/s', w0, 'native').median / floor[w0].seconds).toFixed(2)}×. Unthrottled: Nydus ≤ 0.6× OCI: ${t('unthrottled', w0, 'native').toFixed(3)}×. Floor bytes: ${touchedNote}.`);
  lines.push('');
  lines.push('![cold start chart](cold-start.svg)');
  // (a partial run leaves the report's chart alone)
  if (complete) writeFileSync(join(repoRoot, 'docs/cold-start.svg'), svgChart(chart));
  process.stdout.write(lines.join('\n') + '\n');
}

/** Grouped horizontal bars: one group per (network, workload), one bar per image kind and the floor. */
function svgChart(rows) {
  const groups = [...new Set(rows.map((r) => `${r.condition}|${r.workload}`))];
  const colors = { OCI: '#8c8c8c', Nydus: '#2f6fbf', zran: '#47a36b', floor: '#d9a441' };
  const barH = 16;
  const gap = 4;
  const groupGap = 26;
  const left = 230;
  const width = 900;
  const plotW = width - left - 90;
  const perGroup = (g) => rows.filter((r) => `${r.condition}|${r.workload}` === g);
  let y = 50;
  const parts = [];
  for (const g of groups) {
    const [condition, workload] = g.split('|');
    const rs = perGroup(g);
    const max = Math.max(...rs.map((r) => r.seconds));
    parts.push(`<text x="10" y="${y - 6}" font-size="13" font-weight="bold">${condition}, ${workload} (scale: ${max.toFixed(0)} s)</text>`);
    for (const r of rs) {
      const w = Math.max(1, (r.seconds / max) * plotW);
      parts.push(`<text x="${left - 8}" y="${y + barH - 4}" font-size="12" text-anchor="end">${r.name}</text>`);
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colors[r.name]}"/>`);
      parts.push(`<text x="${(left + w + 6).toFixed(1)}" y="${y + barH - 4}" font-size="12">${r.seconds.toFixed(1)} s</text>`);
      y += barH + gap;
    }
    y += groupGap;
  }
  const height = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">Cold start to first output line, node application image (median seconds, shorter is better)</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

await main();
