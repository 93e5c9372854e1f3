#!/usr/bin/env node
// The main job end to end on a bundled default: build a Nydus (RAFS v6) image from a sample
// busybox root filesystem, inspect and check it, mount it with the kernel's EROFS driver, list
// it, read from it and run a program from it; build a compressed variant and unpack it; then,
// against a docker-registry started on loopback, copy the sample OCI image in, convert it to a
// Nydus image (native and zran), check the result against its source and inspect it with skopeo;
// finally start the nydus-ts snapshotter and a private containerd, lazily pull the Nydus images
// with `nydusd-ts pull`, run containers from them with `ctr run`, and compare the time and the
// registry bytes with the OCI image pulled and run with containerd's own overlayfs snapshotter.
// `npm run demo` runs this after set-up and build. Everything lives under one temp dir and is
// torn down at the end (also after a failure).
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, symlinkSync, readFileSync, readdirSync, rmSync, chmodSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'apps/nydusify-ts/bin/nydusify-ts.js');
const nydusdBin = path.join(root, 'apps/nydusd-ts/bin/nydusd-ts.js');
// Built packages (npm run demo builds first): the counting proxy and the containerd helpers.
const { startFaultProxy } = await import('@nydus-ts/registry/testing');
const { startContainerd, waitForSnapshotter, stopEverythingUnder } = await import('@nydus-ts/snapshotter/testing');
const work = mkdtempSync(path.join(os.tmpdir(), 'nydus-ts-demo-'));
const cleanups = [];

function step(title) {
  process.stdout.write(`\n=== ${title}\n`);
}
/** Runs a command (echoed), its output shown or captured; throws on a non-zero exit. Asynchronous:
 * the counting proxy in this process must keep serving while containerd pulls through it. */
function run(cmd, args, opts = {}) {
  if (!opts.quiet) process.stdout.write(`$ ${[cmd, ...args].join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', opts.capture ? 'pipe' : 'inherit', opts.quiet ? 'ignore' : 'inherit'] });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}`))));
  });
}
const nydusify = (...args) => run(process.execPath, [cli, ...args]);
const nydusd = (...args) => run(process.execPath, [nydusdBin, ...args]);
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

async function makeSampleRootfs(dir) {
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
  return run('mknod', [path.join(dir, 'dev/null'), 'c', '1', '3']);
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
  return { host, url: `http://${host}`, stop: () => child.kill() };
}

try {
  step('1. A sample root filesystem (busybox-static)');
  const rootfs = path.join(work, 'rootfs');
  mkdirSync(rootfs);
  await makeSampleRootfs(rootfs);
  await run('ls', ['-la', rootfs]);

  step('2. Build a RAFS v6 image (uncompressed chunks, so the kernel can read the blob directly)');
  const blobs = path.join(work, 'blobs');
  const boot = path.join(work, 'image.boot');
  await nydusify('image', 'create', '--type', 'dir-rafs', '--compressor', 'none', '--bootstrap', boot, '--blob-dir', blobs, rootfs);

  step('3. Inspect and check it (every chunk digest verified)');
  await nydusify('image', 'inspect', '--no-tree', boot);
  await nydusify('image', 'check', boot, '--blob-dir', blobs);

  step('4. Mount it with the kernel EROFS driver (blob as a loop device)');
  const blobFiles = readdirSync(blobs);
  const loops = [];
  for (const f of blobFiles) loops.push((await run('losetup', ['-r', '--find', '--show', path.join(blobs, f)], { capture: true })).trim());
  cleanups.push(async () => {
    for (const l of loops) await run('losetup', ['-d', l], { quiet: true });
  });
  const mnt = path.join(work, 'mnt');
  mkdirSync(mnt);
  await run('mount', ['-t', 'erofs', '-o', ['loop', 'ro', ...loops.map((l) => `device=${l}`)].join(','), boot, mnt]);
  cleanups.unshift(() => run('umount', [mnt], { quiet: true }).catch(() => undefined)); // (or gone with the rest below)
  await run('ls', ['-la', mnt, path.join(mnt, 'bin')]);
  await run('cat', [path.join(mnt, 'usr/share/demo/hello.txt')]);
  for (const f of ['bin/busybox', 'usr/share/demo/data.bin']) {
    const same = sha256(path.join(mnt, f)) === sha256(path.join(rootfs, f));
    process.stdout.write(`${f}: ${same ? 'identical to the source' : 'DIFFERS from the source'}\n`);
    if (!same) throw new Error(`${f} differs`);
  }
  await run('chroot', [mnt, '/bin/sh', '-c', 'echo "running $(cat /etc/hostname) from the mounted image"; ls /bin | wc -l']);

  step('5. A compressed image (zstd), unpacked back to a tar');
  const zblobs = path.join(work, 'zblobs');
  const zboot = path.join(work, 'zstd.boot');
  await nydusify('image', 'create', '--type', 'dir-rafs', '--compressor', 'zstd', '--bootstrap', zboot, '--blob-dir', zblobs, rootfs);
  const tar = path.join(work, 'unpacked.tar');
  await nydusify('image', 'unpack', '--bootstrap', zboot, '--blob-dir', zblobs, '--output', tar);
  await run('tar', ['-tvf', tar]);

  step('6. A loopback registry: copy the sample OCI image in, convert it to Nydus, check it');
  const layout = path.join(work, 'oci-layout');
  const bundle = path.join(work, 'bundle');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:v1`]);
  await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  await run('cp', ['-a', `${rootfs}/.`, path.join(bundle, 'rootfs')]);
  await run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
  await run('umoci', ['config', '--image', `${layout}:v1`, '--config.cmd', '/bin/sh']);
  const registry = await startRegistry(path.join(work, 'registry'));
  cleanups.unshift(async () => registry.stop());
  const repo = `${registry.host}/demo/busybox`;
  await nydusify('copy', '--source', `oci:${layout}:v1`, '--target', `${repo}:v1`, '--target-insecure');
  await nydusify('convert', '--source', `${repo}:v1`, '--target', `${repo}:v1-nydus`, '--source-insecure', '--target-insecure');
  await nydusify('check', '--source', `${repo}:v1`, '--target', `${repo}:v1-nydus`, '--source-insecure', '--target-insecure');
  await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${repo}:v1-nydus`]);

  step('7. A zran image too: the original gzip layers stay the data, only a small index is added');
  await nydusify('convert', '--oci-ref', '--source', `${repo}:v1`, '--target', `${repo}:v1-zran`, '--source-insecure', '--target-insecure');

  step('8. The nydus-ts snapshotter and a private containerd 1.6 using it (registry behind a byte-counting proxy)');
  const proxy = await startFaultProxy(registry.url);
  cleanups.unshift(() => proxy.stop());
  const snapRoot = path.join(work, 'snapshotter');
  const snapSock = path.join(work, 'snapshotter.sock');
  const snapLog = path.join(work, 'snapshotter.log');
  process.stdout.write(`$ nydusd-ts snapshotter --root ${snapRoot} --address ${snapSock}\n`);
  const snapshotter = spawn(process.execPath, [nydusdBin, 'snapshotter', '--root', snapRoot, '--address', snapSock], { stdio: ['ignore', 'ignore', 'pipe'] });
  let snapStderr = '';
  snapshotter.stderr.on('data', (d) => (snapStderr += d));
  cleanups.unshift(() => stopEverythingUnder(work));
  cleanups.unshift(() => new Promise((r) => (snapshotter.exitCode !== null ? r() : (snapshotter.once('exit', r), snapshotter.kill('SIGTERM')))).then(() => writeFileSync(snapLog, snapStderr)));
  for (let i = 0; !snapStderr.includes('snapshotter serving'); i++) {
    if (snapshotter.exitCode !== null || i > 300) throw new Error(`nydusd-ts snapshotter did not start: ${snapStderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const containerd = await startContainerd({ dir: path.join(work, 'containerd'), proxyPlugins: { 'nydus-ts': snapSock } });
  cleanups.unshift(() => containerd.stop());
  await waitForSnapshotter(containerd, 'nydus-ts');
  process.stdout.write(`containerd ${containerd.address} with [proxy_plugins.nydus-ts] -> ${snapSock}\n`);
  const ctr = (...args) => run('ctr', ['--address', containerd.address, ...args]);
  const registryBytes = (since) => proxy.requests.slice(since).reduce((a, r) => a + r.responseBytes, 0);
  const timed = async (fn) => {
    const t = process.hrtime.bigint();
    await fn();
    return Number(process.hrtime.bigint() - t) / 1e9;
  };
  const rows = [];
  const ref = (tag) => `${proxy.host}/demo/busybox:${tag}`;

  for (const [tag, label] of [['v1-nydus', 'Nydus (native)'], ['v1-zran', 'Nydus (zran)']]) {
    step(`9. ${label}: lazy pull with nydusd-ts pull, then ctr run`);
    const since = proxy.requests.length;
    const report = path.join(work, `pull-${tag}.json`);
    const pullSecs = await timed(() => nydusd('pull', '--address', containerd.address, '--snapshotter', 'nydus-ts', '--plain-http', '--output-json', report, ref(tag)));
    const pullBytes = JSON.parse(readFileSync(report, 'utf8')).bytesFetched;
    const runSecs = await timed(() => ctr('run', '--rm', '--snapshotter', 'nydus-ts', ref(tag), `demo-${tag}`, '/bin/cat', '/usr/share/demo/hello.txt'));
    rows.push({ label, pullSecs, runSecs, bytes: registryBytes(since), pullBytes });
    const out = await run('ctr', ['--address', containerd.address, 'run', '--rm', '--snapshotter', 'nydus-ts', ref(tag), `demo-${tag}-sha`, '/bin/sha256sum', '/usr/share/demo/data.bin'], { capture: true });
    const same = out.split(' ')[0] === sha256(path.join(rootfs, 'usr/share/demo/data.bin'));
    process.stdout.write(`${out.trim()}  (${same ? 'identical to the source' : 'DIFFERS from the source'})\n`);
    if (!same) throw new Error('data.bin differs in the container');
  }

  step('10. The OCI image as users run it today: ctr images pull + ctr run with containerd’s overlayfs snapshotter');
  {
    const since = proxy.requests.length;
    process.stdout.write(`$ ctr images pull --plain-http --snapshotter overlayfs ${ref('v1')}\n`);
    const pullSecs = await timed(() => run('ctr', ['--address', containerd.address, 'images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref('v1')], { capture: true, quiet: true }));
    const pullBytes = registryBytes(since);
    const runSecs = await timed(() => ctr('run', '--rm', '--snapshotter', 'overlayfs', ref('v1'), 'demo-oci', '/bin/cat', '/usr/share/demo/hello.txt'));
    rows.push({ label: 'OCI (overlayfs)', pullSecs, runSecs, bytes: registryBytes(since), pullBytes });
  }

  step('11. Timings: pull, first container run (cat a small file), bytes from the registry');
  const line = (cells) => `| ${cells.join(' | ')} |\n`;
  process.stdout.write(line(['image', 'pull (s)', 'ctr run (s)', 'total (s)', 'MB from the registry (pull + run)']));
  process.stdout.write(line(['---', '---:', '---:', '---:', '---:']));
  for (const r of rows) {
    const mb = (n) => (n / 1e6).toFixed(3);
    process.stdout.write(line([r.label, r.pullSecs.toFixed(2), r.runSecs.toFixed(2), (r.pullSecs + r.runSecs).toFixed(2), `${mb(r.bytes)} (${mb(r.pullBytes)} + ${mb(r.bytes - r.pullBytes)})`]));
  }
  process.stdout.write('(a loopback registry: the bytes, not the seconds, show what a slow network would cost; see `npm run bench`)\n');
  process.stdout.write('\ndemo: all steps passed\n');
} finally {
  for (const c of cleanups) {
    try {
      await c();
    } catch (err) {
      process.stderr.write(`demo: clean-up: ${err.message}\n`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
