// The node image of the convert benchmarks (Debian minbase + this Node.js), shared by
// convert.mjs and zran.mjs, and by the daemon tests that use the same image (not a benchmark
// itself: run.mjs skips `_` files).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cacheDir } from './_lib.mjs';

/** Makes the cached node layer under a lock (another process may be making it too). */
function nodeLayerCommand(tar, tgz) {
  const libDir = join(dirname(dirname(process.execPath)), 'lib', 'node_modules');
  const script = [
    'set -e',
    `[ -f ${tgz} ] && exit 0`,
    'stage=$(mktemp -d /tmp/bench-node-XXXXXX)',
    'trap \'rm -rf "$stage"\' EXIT',
    `mkdir -p "$stage"/usr/local/bin "$stage"/usr/local/lib && cp -a ${process.execPath} "$stage"/usr/local/bin/node` + (existsSync(libDir) ? ` && cp -a ${libDir} "$stage"/usr/local/lib/` : ''),
    `tar --numeric-owner --owner=0 --group=0 -C "$stage" -cf ${tar}.tmp usr && mv ${tar}.tmp ${tar}`,
    `gzip -6 -c ${tar} > ${tgz}.tmp && mv ${tgz}.tmp ${tgz}`,
  ].join('\n');
  mkdirSync(cacheDir, { recursive: true });
  return ['flock', [join(cacheDir, '.node-layer.lock'), 'bash', '-c', script]];
}

function nodeLayerFiles() {
  const tar = join(cacheDir, `node-${process.version}.tar`);
  return { tar, tgz: `${tar}.gz` };
}

/** The node layer (usr/local/bin/node + usr/local/lib/node_modules) as tar and tar.gz, cached. */
export function ensureNodeLayer() {
  const files = nodeLayerFiles();
  if (!existsSync(files.tgz)) {
    const [cmd, args] = nodeLayerCommand(files.tar, files.tgz);
    const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`making the node layer in ${cacheDir} failed (exit ${r.status})`);
  }
  return files;
}

/** `ensureNodeLayer` without blocking the event loop while the layer is made (for tests). */
export async function ensureNodeLayerAsync() {
  const files = nodeLayerFiles();
  if (!existsSync(files.tgz)) {
    const [cmd, args] = nodeLayerCommand(files.tar, files.tgz);
    await new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`making the node layer in ${cacheDir} failed (exit ${code})`))));
    });
  }
  return files;
}

async function sha256File(file) {
  const h = createHash('sha256');
  for await (const c of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c);
  return `sha256:${h.digest('hex')}`;
}

export async function pushNodeImage(client, repo, layers) {
  const descs = [];
  const diffIds = [];
  for (const l of layers) {
    const digest = await sha256File(l.tgz);
    const size = statSync(l.tgz).size;
    await client.pushBlob(repo, { digest, size }, createReadStream(l.tgz, { highWaterMark: 1 << 20 }));
    descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size });
    diffIds.push(await sha256File(l.tar));
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['node'] }, rootfs: { type: 'layers', diff_ids: diffIds }, history: [{ created_by: 'debootstrap' }, { created_by: 'COPY node' }] }));
  const cdigest = `sha256:${createHash('sha256').update(config).digest('hex')}`;
  const up = await client.createUpload(repo);
  up.end(config);
  await up.commit({ digest: cdigest, size: config.length });
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cdigest, size: config.length }, layers: descs }));
  await client.putManifest(repo, 'v1', manifest, 'application/vnd.oci.image.manifest.v1+json');
  return descs;
}
