#!/usr/bin/env node
// Benchmark: nydusd-ts serving the node image of the convert benchmark (Debian minbase + this
// Node.js, converted by nydusify-ts into a loopback docker-registry), in FUSE mode and in erofs
// mode, against a kernel EROFS mount of the `--compressor none` build with local blobs (the
// baseline) and a bare fuse-native passthrough filesystem over the same tree on local disk (the
// floor). Page caches are dropped (`echo 3 > /proc/sys/vm/drop_caches`) where a row says so.
// Besides wall times, CPU times (user + system of the command and of the process serving the
// mount, the kernel's own loop-device workers left out): robust against the other jobs of a
// shared machine, which wall times are not.
// Prints a Markdown section (## Daemon) on stdout; progress goes to stderr.
//
// Memory: the daemon's peak RSS (VmHWM) from its start to the end of the cold read, against
// the same floor process started afresh with the node flags and environment of the bin's
// shebang (the least a fuse-native filesystem serving this tree takes: Node.js, the addon,
// libfuse's threads, no state of its own) doing the same walks and whole-tree read.
//
// Env: BENCH_DAEMON_RUNS (default 3).
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import { fetchNydusBootstrap } from '@nydus-ts/testing';
import { ensureMinbase, median, nydusifyBin, repoRoot, sh } from './_lib.mjs';
import { ensureNodeLayer, pushNodeImage } from './_node-image.mjs';

const runs = Number(process.env.BENCH_DAEMON_RUNS ?? 3);
delete process.env.NODE_EXTRA_CA_CERTS;
const nydusdBin = join(repoRoot, 'apps/nydusd-ts/bin/nydusd-ts.js');
const log = (s) => process.stderr.write(`[bench daemon] ${s}\n`);
const env = { ...process.env, HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };

/**
 * What the bin's shebang (`#!/usr/bin/env -S [NAME=value...] node [flags...]`) sets: the
 * daemon runs as `node FLAGS nydusd-ts.js` with that environment, i.e. as the command does.
 */
function shebangLaunch(file) {
  const words = readFileSync(file, 'utf8').split('\n', 1)[0].replace(/^#!\S*env -S /, '').split(/\s+/).filter(Boolean);
  const at = words.indexOf('node');
  if (at < 0) throw new Error(`${file}: no node in its shebang`);
  return { env: Object.fromEntries(words.slice(0, at).map((w) => w.split('=', 2))), nodeFlags: words.slice(at + 1) };
}
const launch = shebangLaunch(nydusdBin);
const rssOf = (pid, field) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 << 20, ...options });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout;
}

function dropCaches() {
  sh('sync && echo 3 > /proc/sys/vm/drop_caches');
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function processCpu(pid) {
  if (pid === undefined) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(run('getconf', ['CLK_TCK']).trim());

/**
 * A shell command's wall seconds, CPU seconds (its own, children included, plus what the server
 * process `serverPid` used meanwhile) and stdout.
 */
function timed(cmd, serverPid) {
  const serverBefore = processCpu(serverPid);
  const t = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', 'bash', '-c', cmd], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  const m = /^([\d.]+) ([\d.]+)$/.exec(r.stderr.trim().split('\n').at(-1) ?? '');
  if (r.status !== 0 || !m) throw new Error(`${cmd} failed (exit ${r.status}): ${r.stderr}`);
  return { seconds, cpu: Number(m[1]) + Number(m[2]) + processCpu(serverPid) - serverBefore, stdout: r.stdout };
}

function api(socketPath, path) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body ? JSON.parse(body) : undefined));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Stop functions of the daemons still running (stopped on the way out, also after a failure). */
const live = new Set();

async function startDaemon(dir, config, bootstrap, mode) {
  mkdirSync(join(dir, 'mnt'), { recursive: true });
  const sock = join(dir, 'api.sock');
  const child = spawn(process.execPath, [...launch.nodeFlags, nydusdBin, '--config', config, '--bootstrap', bootstrap, '--mountpoint', join(dir, 'mnt'), '--apisock', sock, '--mode', mode, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...env, ...launch.env } });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  live.add(stop);
  for (let i = 0; ; i++) {
    const info = await api(sock, '/api/v1/daemon').catch(() => undefined);
    if (info?.state === 'RUNNING') break;
    if (child.exitCode !== null) throw new Error(`nydusd-ts exited with ${child.exitCode}`);
    if (i === 1200) throw new Error(`nydusd-ts on ${dir} not RUNNING after 120 s`);
    await sleep(100);
  }
  return {
    mnt: join(dir, 'mnt'),
    pid: child.pid,
    api: (p) => api(sock, p),
    rss: () => rssOf(child.pid, 'VmRSS'),
    peakRss: () => rssOf(child.pid, 'VmHWM'),
    async stop() {
      live.delete(stop);
      await stop();
    },
  };
}

async function startPassthrough(tree, mnt, { nodeFlags = [], env: extraEnv = {} } = {}) {
  mkdirSync(mnt, { recursive: true });
  const child = spawn(process.execPath, [...nodeFlags, join(repoRoot, 'scripts/bench/_fuse-passthrough.mjs'), tree, mnt], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...extraEnv } });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (code) => reject(new Error(`passthrough exited with ${code}`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    mnt,
    pid: child.pid,
    rss: () => rssOf(child.pid, 'VmRSS'),
    peakRss: () => rssOf(child.pid, 'VmHWM'),
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function walks(mnt, serverPid) {
  dropCaches();
  const first = timed(`find ${mnt} -printf '%p %s %m\\n' > /dev/null`, serverPid);
  const second = timed(`find ${mnt} -printf '%p %s %m\\n' > /dev/null`, serverPid);
  return { first: first.seconds, second: second.seconds, firstCpu: first.cpu, secondCpu: second.cpu };
}

function tarRead(mnt, serverPid) {
  dropCaches();
  const r = timed(`tar -cf - -C ${mnt} . | wc -c`, serverPid);
  return { seconds: r.seconds, cpu: r.cpu, bytes: Number(r.stdout.trim()) };
}

function randomReads(mnt, planFile) {
  dropCaches();
  return JSON.parse(run(process.execPath, [join(repoRoot, 'scripts/bench/_rand-read.mjs'), mnt, planFile]));
}

/** mulberry32 */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const med = (xs, f) => median(xs.map(f));
const s2 = (x) => x.toFixed(2);
const MBps = (bytes, s) => (bytes / 1e6 / s).toFixed(0);

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'bench-daemon-'));
  const minbase = ensureMinbase();
  const node = ensureNodeLayer();
  const registry = await startRegistry();
  const cleanups = [];
  try {
    const client = new RegistryClient({ registry: registry.host, insecure: true });
    await pushNodeImage(client, 'bench/node', [{ tar: minbase.tar, tgz: minbase.tgz }, node]);
    log('converting the node image (zstd, and --compressor none for the kernel baseline)');
    run(process.execPath, [nydusifyBin, 'convert', '--source', `${registry.host}/bench/node:v1`, '--target', `${registry.host}/bench/node-nydus:v1`, '--source-insecure', '--target-insecure']);
    run(process.execPath, [nydusifyBin, 'convert', '--source', `${registry.host}/bench/node:v1`, '--target', `${registry.host}/bench/node-none:v1`, '--source-insecure', '--target-insecure', '--compressor', 'none']);
    const boot = join(work, 'zstd.boot');
    const zstd = await fetchNydusBootstrap(client, 'bench/node-nydus', 'v1', boot);
    const noneBoot = join(work, 'none.boot');
    const none = await fetchNydusBootstrap(client, 'bench/node-none', 'v1', noneBoot);
    const blobBytes = zstd.manifest.layers.slice(0, -1).reduce((n, l) => n + l.size, 0);

    // Kernel baseline: the none build with its blobs on local disk as loop devices.
    const loops = [];
    for (const layer of none.manifest.layers.slice(0, -1)) {
      const file = join(work, layer.digest.slice(7));
      await pipeline(client.fetchBlob('bench/node-none', layer), createWriteStream(file));
      loops.push(run('losetup', ['-r', '--find', '--show', file]).trim());
    }
    await client.close();
    const kmnt = join(work, 'kernel');
    mkdirSync(kmnt);
    run('mount', ['-t', 'erofs', '-o', ['loop', 'ro', ...loops.map((l) => `device=${l}`)].join(','), noneBoot, kmnt]);
    cleanups.push(() => {
      spawnSync('umount', [kmnt]);
      for (const l of loops) spawnSync('losetup', ['-d', l]);
    });
    // Floor: the same tree on local disk under a bare passthrough.
    const tree = join(work, 'tree');
    sh(`mkdir -p ${tree} && cp -a ${kmnt}/. ${tree}/`);
    const treeBytes = Number(sh(`tar -cf - -C ${tree} . | wc -c`).trim());
    const entries = Number(sh(`find ${tree} | wc -l`).trim());
    const floor = await startPassthrough(tree, join(work, 'floor'));
    cleanups.push(() => floor.stop());
    log(`tree: ${entries} entries, ${(treeBytes / 1e6).toFixed(0)} MB as tar; blobs ${(blobBytes / 1e6).toFixed(1)} MB`);

    // Random 4 KiB reads over the large files (> 1 MiB), the same plan everywhere.
    const big = sh(`find ${tree} -type f -size +1M -printf '%P %s\\n'`).trim().split('\n').map((l) => l.split(' ')).map(([p, s]) => [p, Number(s)]);
    const rand = prng(7);
    const plan = Array.from({ length: 2000 }, () => {
      const [p, size] = big[Math.floor(rand() * big.length)];
      return [p, Math.floor((rand() * (size - 4096)) / 4096) * 4096];
    });
    const planFile = join(work, 'plan.json');
    writeFileSync(planFile, JSON.stringify(plan));

    const configFor = (dir) => {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify({ device: { backend: { type: 'registry', config: { scheme: 'http', host: registry.host, repo: 'bench/node-nydus', timeout: 10, connect_timeout: 5, retry_limit: 2 } }, cache: { type: 'blobcache', config: { work_dir: join(dir, 'cache') } } }, mode: 'direct', enable_xattr: true }));
      return file;
    };

    const rows = { kernel: { walk: [], warm: [], rand: [] }, floor: { walk: [], warm: [], rand: [], startRss: [], rss: [] } };
    for (let i = 0; i < runs; i++) {
      log(`kernel and floor, run ${i + 1}/${runs}`);
      for (const [name, mnt, pid] of [['kernel', kmnt, undefined], ['floor', floor.mnt, floor.pid]]) {
        rows[name].walk.push(walks(mnt, pid));
        rows[name].warm.push(tarRead(mnt, pid));
        rows[name].rand.push(randomReads(mnt, planFile));
      }
      // Memory floor: a fresh passthrough as the daemon is launched, the cold read's sequence.
      const m = await startPassthrough(tree, join(work, `floor-mem-${i}`), launch);
      try {
        rows.floor.startRss.push(m.rss());
        walks(m.mnt, m.pid);
        tarRead(m.mnt, m.pid);
        rows.floor.rss.push(m.peakRss());
      } finally {
        await m.stop();
      }
    }
    for (const mode of ['fuse', 'erofs']) {
      const r = (rows[mode] = { walk: [], cold: [], warm: [], rand: [], startRss: [], rss: [], node: [] });
      for (let i = 0; i < runs; i++) {
        log(`${mode} mode, run ${i + 1}/${runs}`);
        const dir = join(work, `${mode}-${i}`);
        mkdirSync(dir);
        const config = configFor(dir);
        // Cold: a fresh cache, everything from the loopback registry.
        let d = await startDaemon(dir, config, boot, mode);
        r.startRss.push(d.rss());
        r.walk.push(walks(d.mnt, d.pid));
        const cold = tarRead(d.mnt, d.pid);
        if (cold.bytes !== treeBytes) throw new Error(`${mode}: tar of the mount has ${cold.bytes} bytes, the tree ${treeBytes}`);
        r.cold.push(cold);
        r.rss.push(d.peakRss());
        await d.stop();
        // Warm: the blob cache full, page cache dropped.
        d = await startDaemon(dir, config, boot, mode);
        r.warm.push(tarRead(d.mnt, d.pid));
        r.rand.push(randomReads(d.mnt, planFile));
        await d.stop();
        // node -e 0 in a chroot on a cold cache: bytes fetched against bytes of chunks touched.
        const ndir = join(work, `${mode}-node-${i}`);
        mkdirSync(ndir);
        d = await startDaemon(ndir, configFor(ndir), boot, mode);
        run('chroot', [d.mnt, '/usr/local/bin/node', '-e', '0'], { timeout: 300_000 });
        const c = await d.api('/api/v1/metrics/blobcache');
        r.node.push({ fetched: c.fetch_bytes, touched: c.touched_bytes });
        await d.stop();
        rmSync(ndir, { recursive: true, force: true });
      }
    }

    const k = rows.kernel;
    const f = rows.floor;
    const walk1 = (x) => med(x.walk, (w) => w.first);
    const walk2 = (x) => med(x.walk, (w) => w.second);
    const warmS = (x) => med(x.warm, (w) => w.seconds);
    const cpu1 = (x) => med(x.walk, (w) => w.firstCpu);
    const cpu2 = (x) => med(x.walk, (w) => w.secondCpu);
    const warmCpu = (x) => med(x.warm, (w) => w.cpu);
    const coldCpu = (x) => med(x.cold, (w) => w.cpu);
    const p50 = (x) => med(x.rand, (q) => q.p50);
    const p99 = (x) => med(x.rand, (q) => q.p99);
    const F = rows.fuse;
    const E = rows.erofs;
    const mibs = (xs) => (med(xs, (x) => x) / 2 ** 20).toFixed(0);
    const ratio = (x) => med(x.node, (n) => n.fetched / n.touched);
    const verdict = (ok) => (ok ? 'met' : 'not met');
    const out = [
      '## Daemon',
      '',
      `nydusd-ts serving the node image of the convert benchmark (Debian bookworm minbase + Node.js ${process.version}; ${entries} entries, ${(treeBytes / 1e6).toFixed(0)} MB as tar; zstd, 1 MiB chunks, blake3: ${(blobBytes / 1e6).toFixed(1)} MB of blobs) from a loopback docker-registry, ${runs} runs, median. Kernel EROFS = the \`--compressor none\` build mounted by the kernel with its blobs on local disk (loop devices); floor = a bare fuse-native read-only passthrough (scripts/bench/_fuse-passthrough.mjs: getattr/readdir/readlink/open/read/release straight to the local files, kernel cache, 300 s timeouts) over the same tree copied to local disk. "Cold" = a fresh blob cache (every chunk fetched from the registry); "warm" = the blob cache full; page caches dropped before the first walk, each tar and each random-read run. Random reads: 2,000 reads of 4 KiB at 4 KiB-aligned random offsets of the files > 1 MiB, one process, synchronous. Memory: the daemons run as the bin's shebang runs them (\`${[...Object.entries(launch.env).map(([k, v]) => `${k}=${v}`), 'node', ...launch.nodeFlags].join(' ')}\`); the floor of the RSS rows is a fresh passthrough per run, started the same way, doing the cold read's walks and whole-tree read (its reads come from local files: Node.js, the addon and libfuse's threads, no state of its own). The machine is shared with other jobs, so times vary between runs.`,
      '',
      '| measurement | kernel EROFS | floor (passthrough) | nydusd-ts FUSE | nydusd-ts erofs mode |',
      '|---|---|---|---|---|',
      `| metadata walk \`find -printf '%p %s %m'\`, first (s) | ${s2(walk1(k))} | ${s2(walk1(f))} | ${s2(walk1(F))} | ${s2(walk1(E))} |`,
      `| metadata walk, second (s) | ${s2(walk2(k))} | ${s2(walk2(f))} | ${s2(walk2(F))} | ${s2(walk2(E))} |`,
      `| metadata walk, CPU s (find + server), first / second | ${s2(cpu1(k))} / ${s2(cpu2(k))} | ${s2(cpu1(f))} / ${s2(cpu2(f))} | ${s2(cpu1(F))} / ${s2(cpu2(F))} | ${s2(cpu1(E))} / ${s2(cpu2(E))} |`,
      `| whole-tree read \`tar -cf - . \\| wc -c\`, cold from the registry (s / MB/s) | – | – | ${s2(med(F.cold, (c) => c.seconds))} / ${MBps(treeBytes, med(F.cold, (c) => c.seconds))} | ${s2(med(E.cold, (c) => c.seconds))} / ${MBps(treeBytes, med(E.cold, (c) => c.seconds))} |`,
      `| whole-tree read, warm blob cache (s / MB/s) | ${s2(warmS(k))} / ${MBps(treeBytes, warmS(k))} | ${s2(warmS(f))} / ${MBps(treeBytes, warmS(f))} | ${s2(warmS(F))} / ${MBps(treeBytes, warmS(F))} | ${s2(warmS(E))} / ${MBps(treeBytes, warmS(E))} |`,
      `| whole-tree read, CPU s (tar + server): warm; cold | ${s2(warmCpu(k))} | ${s2(warmCpu(f))} | ${s2(warmCpu(F))}; ${s2(coldCpu(F))} | ${s2(warmCpu(E))}; ${s2(coldCpu(E))} |`,
      `| 4 KiB random read, warm blob cache, p50 / p99 (µs) | ${p50(k).toFixed(0)} / ${p99(k).toFixed(0)} | ${p50(f).toFixed(0)} / ${p99(f).toFixed(0)} | ${p50(F).toFixed(0)} / ${p99(F).toFixed(0)} | ${p50(E).toFixed(0)} / ${p99(E).toFixed(0)} |`,
      `| RSS once mounted, before any read (MiB) | – | ${mibs(f.startRss)} | ${mibs(F.startRss)} | ${mibs(E.startRss)} |`,
      `| peak RSS from the start to the end of the cold read (the walks, then the whole-tree read) (MiB) | – | ${mibs(f.rss)} | ${mibs(F.rss)} | ${mibs(E.rss)} |`,
      `| \`chroot MNT node -e 0\`, cold: bytes fetched / bytes of chunks touched | – | – | ${ratio(F).toFixed(2)} (${(med(F.node, (n) => n.fetched) / 1e6).toFixed(1)} / ${(med(F.node, (n) => n.touched) / 1e6).toFixed(1)} MB) | ${ratio(E).toFixed(2)} (${(med(E.node, (n) => n.fetched) / 1e6).toFixed(1)} / ${(med(E.node, (n) => n.touched) / 1e6).toFixed(1)} MB) |`,
      '',
      'Targets:',
      '',
      `- erofs mode metadata walk ≤ 1.2× the kernel's: ${s2(walk1(E) / walk1(k))}× / ${s2(walk2(E) / walk2(k))}× (first / second): ${verdict(walk1(E) / walk1(k) <= 1.2 && walk2(E) / walk2(k) <= 1.2)}. In CPU time: ${s2(cpu1(E) / cpu1(k))}× / ${s2(cpu2(E) / cpu2(k))}×.`,
      `- FUSE metadata walk ≤ 1.3× the floor's: ${s2(walk1(F) / walk1(f))}× / ${s2(walk2(F) / walk2(f))}×: ${verdict(walk1(F) / walk1(f) <= 1.3 && walk2(F) / walk2(f) <= 1.3)}; in CPU time ${s2(cpu1(F) / cpu1(f))}× / ${s2(cpu2(F) / cpu2(f))}×. (The floor itself: ${s2(walk1(f) / walk1(k))}× / ${s2(walk2(f) / walk2(k))}× the kernel.)`,
      `- FUSE whole-tree read, warm, ≥ 0.8× the floor's speed: ${s2(warmS(f) / warmS(F))}×: ${verdict(warmS(f) / warmS(F) >= 0.8)}; CPU time ${s2(warmCpu(F) / warmCpu(f))}× the floor's. (The floor: ${s2(warmS(k) / warmS(f))}× the kernel's speed.)`,
      `- erofs mode whole-tree read, warm, ≥ 0.5× the kernel's speed: ${s2(warmS(k) / warmS(E))}×: ${verdict(warmS(k) / warmS(E) >= 0.5)}; CPU time ${s2(warmCpu(E) / warmCpu(k))}× the kernel's.`,
      `- FUSE 4 KiB random read p50 ≤ 1.3× the floor's: ${s2(p50(F) / p50(f))}×: ${verdict(p50(F) / p50(f) <= 1.3)} (erofs mode: ${s2(p50(E) / p50(f))}× the floor, ${s2(p50(E) / p50(k))}× the kernel).`,
      `- peak RSS during the cold read ≤ 120 MB: ${(med(F.rss, (x) => x) / 1e6).toFixed(0)} MB (FUSE), ${(med(E.rss, (x) => x) / 1e6).toFixed(0)} MB (erofs mode): ${verdict(med(F.rss, (x) => x) <= 120e6 && med(E.rss, (x) => x) <= 120e6)}. The floor (the same reads through the passthrough, Node.js launched as the bin launches the daemon: ${[...Object.entries(launch.env).map(([k, v]) => `${k}=${v}`), 'node', ...launch.nodeFlags].join(' ')}): ${(med(f.rss, (x) => x) / 1e6).toFixed(0)} MB, ${(med(f.startRss, (x) => x) / 1e6).toFixed(0)} MB of it once mounted.`,
      `- \`node -e 0\` bytes fetched / touched ≤ 1.3: ${ratio(F).toFixed(2)} (FUSE), ${ratio(E).toFixed(2)} (erofs mode): ${verdict(ratio(F) <= 1.3 && ratio(E) <= 1.3)}.`,
      '',
    ];
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    // A failing cleanup must not hide the error that got us here.
    for (const c of [...live, ...cleanups.reverse(), () => registry.stop(), () => rmSync(work, { recursive: true, force: true })]) {
      try {
        await c();
      } catch (err) {
        log(`cleanup: ${err.message}`);
      }
    }
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
