#!/usr/bin/env node
// The main job end to end on a bundled default: build a Nydus (RAFS v6) image from a sample
// busybox root filesystem, inspect and check it, mount it with the kernel's EROFS driver, list
// it, read from it and run a program from it; build a compressed variant and unpack it; then,
// against a docker-registry started on loopback, copy the sample OCI image in, convert it to a
// Nydus image, check the result against its source and inspect it with skopeo.
// `npm run demo` runs this after set-up and build. Everything lives under one temp dir.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, symlinkSync, readFileSync, readdirSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'apps/nydusify-ts/bin/nydusify-ts.js');
const work = mkdtempSync(path.join(os.tmpdir(), 'nydus-ts-demo-'));
const cleanups = [];

function step(title) {
  process.stdout.write(`\n=== ${title}\n`);
}
function run(cmd, args, opts = {}) {
  process.stdout.write(`$ ${[cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd, args, { stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} exited with ${r.status}`);
  return r.stdout ?? '';
}
const nydusify = (...args) => run(process.execPath, [cli, ...args]);
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');

function pseudoRandom(seed, size) {
  const out = Buffer.alloc(size);
  let h = createHash('sha512').update(seed).digest();
  for (let off = 0; off < size; off += h.length) {
    h.copy(out, off);
    h = createHash('sha512').update(h).digest();
  }
  return out;
}

function makeSampleRootfs(dir) {
  for (const d of ['bin', 'etc', 'usr/share/demo', 'tmp', 'dev']) mkdirSync(path.join(dir, d), { recursive: true });
  chmodSync(path.join(dir, 'tmp'), 0o1777);
  copyFileSync('/bin/busybox', path.join(dir, 'bin/busybox'));
  chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'ls', 'cat', 'echo', 'sha256sum', 'wc']) symlinkSync('busybox', path.join(dir, 'bin', applet));
  writeFileSync(path.join(dir, 'etc/hostname'), 'nydus-ts-demo\n');
  writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(path.join(dir, 'usr/share/demo/hello.txt'), 'Hello from a Nydus image built by nydus-ts.\n');
  // 24 MiB of pseudo-random data in 4 MiB parts, parts repeating (deduplicated chunks).
  const parts = [0, 1, 2, 0, 1, 2].map((seed) => pseudoRandom(String(seed), 4 << 20));
  writeFileSync(path.join(dir, 'usr/share/demo/data.bin'), Buffer.concat(parts));
  run('mknod', [path.join(dir, 'dev/null'), 'c', '1', '3']);
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** docker-registry (distribution 2.8) on 127.0.0.1 with its storage under `dir`. */
async function startRegistry(dir) {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  writeFileSync(config, [
    'version: 0.1',
    'log: { level: error }',
    `storage: { filesystem: { rootdirectory: ${dir}/data }, delete: { enabled: true } }`,
    `http: { addr: 127.0.0.1:${port} }`,
    '',
  ].join('\n'));
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 100) throw new Error('docker-registry did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(`docker-registry listening on ${host}\n`);
  return { host, stop: () => child.kill() };
}

try {
  step('1. A sample root filesystem (busybox-static)');
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(rootfs);
  makeSampleRootfs(rootfs);
  run('ls', ['-la', rootfs]);

  step('2. Build a RAFS v6 image (uncompressed chunks, so the kernel can read the blob directly)');
  const blobs = path.join(work, 'blobs');
  const boot = path.join(work, 'image.boot');
  nydusify('image', 'create', '--type', 'dir-rafs', '--compressor', 'none', '--bootstrap', boot, '--blob-dir', blobs, rootfs);

  step('3. Inspect and check it (every chunk digest verified)');
  nydusify('image', 'inspect', '--no-tree', boot);
  nydusify('image', 'check', boot, '--blob-dir', blobs);

  step('4. Mount it with the kernel EROFS driver (blob as a loop device)');
  const blobFiles = readdirSync(blobs);
  const loops = blobFiles.map((f) => run('losetup', ['-r', '--find', '--show', path.join(blobs, f)], { capture: true }).trim());
  cleanups.push(() => loops.forEach((l) => spawnSync('losetup', ['-d', l])));
  const mnt = path.join(work, 'mnt');
  mkdirSync(mnt);
  run('mount', ['-t', 'erofs', '-o', ['loop', 'ro', ...loops.map((l) => `device=${l}`)].join(','), boot, mnt]);
  cleanups.unshift(() => spawnSync('umount', [mnt]));
  run('ls', ['-la', mnt, path.join(mnt, 'bin')]);
  run('cat', [path.join(mnt, 'usr/share/demo/hello.txt')]);
  for (const f of ['bin/busybox', 'usr/share/demo/data.bin']) {
    const same = sha256(path.join(mnt, f)) === sha256(path.join(rootfs, f));
    process.stdout.write(`${f}: ${same ? 'identical to the source' : 'DIFFERS from the source'}\n`);
    if (!same) throw new Error(`${f} differs`);
  }
  run('chroot', [mnt, '/bin/sh', '-c', 'echo "running $(cat /etc/hostname) from the mounted image"; ls /bin | wc -l']);

  step('5. A compressed image (zstd), unpacked back to a tar');
  const zblobs = path.join(work, 'zblobs');
  const zboot = path.join(work, 'zstd.boot');
  nydusify('image', 'create', '--type', 'dir-rafs', '--compressor', 'zstd', '--bootstrap', zboot, '--blob-dir', zblobs, rootfs);
  const tar = path.join(work, 'unpacked.tar');
  nydusify('image', 'unpack', '--bootstrap', zboot, '--blob-dir', zblobs, '--output', tar);
  run('tar', ['-tvf', tar]);

  step('6. A loopback registry: copy the sample OCI image in, convert it to Nydus, check it');
  const layout = path.join(work, 'oci-layout');
  const bundle = path.join(work, 'bundle');
  run('umoci', ['init', '--layout', layout]);
  run('umoci', ['new', '--image', `${layout}:v1`]);
  run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  run('cp', ['-a', `${rootfs}/.`, path.join(bundle, 'rootfs')]);
  run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
  run('umoci', ['config', '--image', `${layout}:v1`, '--config.cmd', '/bin/sh']);
  const registry = await startRegistry(path.join(work, 'registry'));
  cleanups.unshift(registry.stop);
  const repo = `${registry.host}/demo/busybox`;
  nydusify('copy', '--source', `oci:${layout}:v1`, '--target', `${repo}:v1`, '--target-insecure');
  nydusify('convert', '--source', `${repo}:v1`, '--target', `${repo}:v1-nydus`, '--source-insecure', '--target-insecure');
  nydusify('check', '--source', `${repo}:v1`, '--target', `${repo}:v1-nydus`, '--source-insecure', '--target-insecure');
  run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${repo}:v1-nydus`]);
  process.stdout.write('\n');
  process.stdout.write('\ndemo: all steps passed\n');
} finally {
  for (const c of cleanups) c();
  rmSync(work, { recursive: true, force: true });
}
