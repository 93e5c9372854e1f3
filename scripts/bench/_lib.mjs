// Shared helpers for benchmark scripts (not a benchmark itself: run.mjs skips `_` files).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const nydusifyBin = path.join(repoRoot, 'apps/nydusify-ts/bin/nydusify-ts.js');
export const cacheDir = process.env.NYDUS_TS_CACHE ?? '/var/cache/nydus-ts';

/** Runs a command under GNU time (optionally pinned to one CPU); returns wall seconds and peak RSS. */
export function measure(cmd, args, options = {}) {
  const fmt = '%e %M %U %S';
  const full = options.cpu !== undefined ? ['taskset', '-c', String(options.cpu), cmd, ...args] : [cmd, ...args];
  const r = spawnSync('/usr/bin/time', ['-f', fmt, ...full], { encoding: 'utf8', stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'], cwd: options.cwd ?? repoRoot, env: { ...process.env, ...options.env } });
  const lines = (r.stderr ?? '').trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const m = /^([\d.]+) (\d+) ([\d.]+) ([\d.]+)$/.exec(last);
  if (r.status !== 0 || !m) throw new Error(`${full.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return { seconds: Number(m[1]), peakRssBytes: Number(m[2]) * 1024, cpuSeconds: Number(m[3]) + Number(m[4]) };
}

export function sh(cmd, options = {}) {
  const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], cwd: options.cwd ?? repoRoot, maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} failed (exit ${r.status})`);
  return r.stdout;
}

/**
 * A Debian bookworm minbase tree (debootstrap, ~130 MB after dropping the .deb cache), made once
 * and cached with its tar and tar.gz under the cache dir.
 */
export function ensureMinbase() {
  const dir = path.join(cacheDir, 'minbase');
  const tar = path.join(cacheDir, 'minbase.tar');
  const tgz = path.join(cacheDir, 'minbase.tar.gz');
  if (!existsSync(path.join(dir, 'etc/debian_version'))) {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = dir + '.tmp';
    rmSync(tmp, { recursive: true, force: true });
    process.stderr.write('bench: debootstrap --variant=minbase bookworm (once, cached)\n');
    sh(`debootstrap --variant=minbase bookworm ${tmp} http://deb.debian.org/debian >&2`);
    sh(`rm -rf ${tmp}/var/cache/apt/archives/*.deb ${tmp}/var/lib/apt/lists/*_Packages`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    rmSync(tar, { force: true });
    rmSync(tgz, { force: true });
  }
  if (!existsSync(tar)) {
    sh(`tar --xattrs --numeric-owner -C ${dir} -cf ${tar}.tmp . && mv ${tar}.tmp ${tar}`);
  }
  if (!existsSync(tgz)) {
    sh(`gzip -6 -c ${tar} > ${tgz}.tmp && mv ${tgz}.tmp ${tgz}`);
  }
  return { dir, tar, tgz, tarBytes: statSync(tar).size, tgzBytes: statSync(tgz).size };
}

export const mb = (bytes) => (bytes / 1e6).toFixed(1);
export const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
export const rate = (bytes, seconds) => (bytes / 1e6 / seconds).toFixed(0);
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
