// The node image of the convert benchmarks (Debian minbase + this Node.js), shared by
// convert.mjs and zran.mjs (not a benchmark itself: run.mjs skips `_` files).
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cacheDir, sh } from './_lib.mjs';

/** The node layer (usr/local/bin/node + usr/local/lib/node_modules) as tar and tar.gz, cached. */
export function ensureNodeLayer() {
  const tar = join(cacheDir, `node-${process.version}.tar`);
  const tgz = `${tar}.gz`;
  if (!existsSync(tgz)) {
    const stage = mkdtempSync(join(tmpdir(), 'bench-node-'));
    try {
      const libDir = join(dirname(dirname(process.execPath)), 'lib', 'node_modules');
      sh(`mkdir -p ${stage}/usr/local/bin ${stage}/usr/local/lib && cp -a ${process.execPath} ${stage}/usr/local/bin/node` + (existsSync(libDir) ? ` && cp -a ${libDir} ${stage}/usr/local/lib/` : ''));
      sh(`tar --numeric-owner --owner=0 --group=0 -C ${stage} -cf ${tar}.tmp usr && mv ${tar}.tmp ${tar} && gzip -6 -c ${tar} > ${tgz}.tmp && mv ${tgz}.tmp ${tgz}`);
    } finally {
      rmSync(stage, { recursive: true, force: true });
    }
  }
  return { tar, tgz };
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
