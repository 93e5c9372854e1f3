// Cold random 4 KiB reads through a nydusd-ts FUSE mount of an image in a registry (run by
// zran.mjs; not a benchmark itself). Mounts the image with nydusd-ts and an empty cache (no
// prefetch, default amplify_io), then reads 4 KiB (O_DIRECT, so each read reaches the daemon)
// at a random 4 KiB-aligned offset of a random regular file ≥ 4 KiB, timing the pread. The
// daemon's backend metrics before and after each read give the bytes fetched for it; a read that
// fetched nothing (its chunk came with an earlier read's fetch: same zran context, or an
// amplified native fetch) is not cold and is left out (counted). A fresh daemon with an empty
// cache is started every BATCH reads, so that most reads stay cold. Mount time (median) and
// bytes fetched at mount (zran: the heads of the meta blobs) are reported separately. Prints one JSON line.
//   node _zran-daemon-reads.mjs HOST REPO TAG READS SEED [BATCH]
import { execFile, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readBootstrapLayer } from '@nydus-ts/converter';
import { BootstrapReader, encodeFsName } from '@nydus-ts/format';
import { RegistryClient } from '@nydus-ts/registry';
import { repoRoot } from './_lib.mjs';

const [host, repo, tag, readsArg, seedArg, batchArg] = process.argv.slice(2);
if (!tag) throw new Error('usage: _zran-daemon-reads.mjs HOST REPO TAG READS SEED [BATCH]');
const reads = Number(readsArg ?? 100);
const batch = Number(batchArg ?? 20);
let seed = Number(seedArg ?? 1);
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const daemonBin = path.join(repoRoot, 'apps/nydusd-ts/bin/nydusd-ts.js');

function api(socketPath, urlPath) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'GET', path: urlPath }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, json: JSON.parse(Buffer.concat(parts).toString('utf8') || 'null') });
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const work = await mkdtemp(path.join(tmpdir(), 'bench-zran-reads-'));
const mnt = path.join(work, 'mnt');
let daemon;
let exited;

/** Starts nydusd-ts on `mnt` with an empty cache; resolves with its API socket once RUNNING. */
async function mount(boot, config, n) {
  const sock = path.join(work, `api-${n}.sock`);
  const started = performance.now();
  daemon = spawn(process.execPath, [daemonBin, '--config', config, '--bootstrap', boot, '--mountpoint', mnt, '--apisock', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  daemon.stderr.on('data', (b) => (stderr += b.toString('utf8')));
  exited = new Promise((resolve) => daemon.once('exit', resolve));
  for (;;) {
    if (daemon.exitCode !== null) throw new Error(`nydusd-ts exited with ${daemon.exitCode} before RUNNING:\n${stderr}`);
    const r = await api(sock, '/api/v1/daemon').catch(() => undefined);
    if (r?.status === 200 && r.json?.state === 'RUNNING') return { sock, ms: performance.now() - started };
    if (performance.now() - started > 120_000) throw new Error(`nydusd-ts not RUNNING after 120 s:\n${stderr}`);
    await sleep(20);
  }
}

async function unmount() {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
  daemon = undefined;
  // (A daemon that died may leave its mount behind.)
  await new Promise((resolve) => execFile('fusermount', ['-uz', mnt], () => resolve()));
}

try {
  const client = new RegistryClient({ registry: host, insecure: true });
  let bootstrap;
  try {
    const manifest = JSON.parse((await client.getManifest(repo, tag)).bytes.toString('utf8'));
    bootstrap = (await readBootstrapLayer(client.fetchBlob(repo, manifest.layers[manifest.layers.length - 1]))).bootstrap;
  } finally {
    await client.close();
  }
  const boot = path.join(work, 'image.boot');
  await writeFile(boot, bootstrap);
  const reader = await BootstrapReader.open(bootstrap);
  const files = [];
  for (const e of reader.walk()) if (e.inode.type === 'file' && e.inode.size >= 4096) files.push(e);
  await mkdir(mnt);

  const latencies = [];
  const fetched = [];
  const mounts = [];
  let mountFetched = 0;
  let warm = 0;
  const buffer = Buffer.alloc(4096);
  for (let n = 0; latencies.length < reads && n < 4 * Math.ceil(reads / batch); n++) {
    const cache = path.join(work, `cache-${n}`);
    const config = path.join(work, `config-${n}.json`);
    await writeFile(
      config,
      JSON.stringify({
        device: { backend: { type: 'registry', config: { scheme: 'http', host, repo } }, cache: { type: 'blobcache', config: { work_dir: cache } } },
        mode: 'direct',
        digest_validate: false,
        enable_xattr: true,
      }),
    );
    const { sock, ms } = await mount(boot, config, n);
    mounts.push(ms);
    const backend = async () => (await api(sock, '/api/v1/metrics/backend')).json;
    mountFetched = (await backend()).read_amount_total;
    for (let i = 0; i < batch && latencies.length < reads; i++) {
      const f = files[Math.floor(random() * files.length)];
      const offset = Math.floor((random() * (f.inode.size - 4096)) / 4096) * 4096;
      const before = await backend();
      const fh = await open(Buffer.concat([Buffer.from(mnt), encodeFsName(f.path)]), constants.O_RDONLY | constants.O_DIRECT);
      let got;
      const t = process.hrtime.bigint();
      try {
        ({ bytesRead: got } = await fh.read(buffer, 0, 4096, offset));
      } finally {
        await fh.close();
      }
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (got !== 4096) throw new Error(`${f.path}: read ${got} bytes at ${offset}`);
      const after = await backend();
      if (after.read_count === before.read_count) {
        warm++;
        continue;
      }
      latencies.push(ms);
      fetched.push(after.read_amount_total - before.read_amount_total);
    }
    await unmount();
    await rm(cache, { recursive: true, force: true });
  }
  const q = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
  process.stdout.write(
    JSON.stringify({
      files: files.length,
      reads: latencies.length,
      warm,
      mounts: mounts.length,
      mountMs: q(mounts, 0.5),
      mountFetched,
      latencyMs: { p50: q(latencies, 0.5), p99: q(latencies, 0.99) },
      fetched: { p50: q(fetched, 0.5), p99: q(fetched, 0.99), max: Math.max(...fetched), mean: fetched.reduce((a, b) => a + b, 0) / fetched.length },
    }) + '\n',
  );
} finally {
  await unmount();
  await rm(work, { recursive: true, force: true });
}
