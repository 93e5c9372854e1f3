/**
 * The e2e images, built by the project's own builders and pushed through the counting proxy:
 * busybox-static with a data file (@nydus-ts/snapshotter/testing), and Debian minbase
 * (debootstrap, cached under NYDUS_TS_CACHE or /var/cache/nydus-ts) plus this machine's Node.js
 * (the converter suite's image builders); each converted to native Nydus and to zran.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertImage } from '@nydus-ts/converter';
import type { RegistryClient } from '@nydus-ts/registry';
import { buildLayer, makeBusyboxRootfs, pseudoRandomBytes, pushImage } from '@nydus-ts/snapshotter/testing';
import { nodeImage } from '../../packages/converter/test/support/images.js';

export interface E2eImage {
  /** The OCI original, then its conversions. */
  oci: string;
  native: string;
  zran: string;
  /** Compressed bytes of the OCI image's layers. */
  layerBytes: number;
}

/** 6 MiB of incompressible data at /data/random.bin (its sha256 is checked in containers). */
export const busyboxData = pseudoRandomBytes('e2e-busybox-data', 6 << 20);

async function convertBoth(host: string, repository: string, oci: string): Promise<{ native: string; zran: string }> {
  const native = `${host}/${repository}:native`;
  const zran = `${host}/${repository}:zran`;
  await convertImage({ source: oci, target: native, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
  await convertImage({ source: oci, target: zran, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ociRef: true });
  return { native, zran };
}

export async function busyboxImages(host: string, work: string): Promise<E2eImage> {
  const base = path.join(work, 'busybox-rootfs');
  await makeBusyboxRootfs(base, { 'etc/motd': 'from the lower layer\n' });
  const upper = path.join(work, 'busybox-data');
  await mkdir(path.join(upper, 'data'), { recursive: true });
  await writeFile(path.join(upper, 'data/random.bin'), busyboxData);
  await writeFile(path.join(upper, 'data/hello.txt'), 'hello from a nydus-ts e2e image\n');
  const layers = [await buildLayer(base, path.join(work, 'busybox-0.tgz')), await buildLayer(upper, path.join(work, 'busybox-1.tgz'))];
  const pushed = await pushImage({ registry: host, repository: 'e2e/busybox', tag: 'oci', layers, config: { cmd: ['/bin/sh'] } });
  return { oci: pushed.ref, ...(await convertBoth(host, 'e2e/busybox', pushed.ref)), layerBytes: layers.reduce((a, l) => a + l.size, 0) };
}

export async function nodeImages(client: RegistryClient): Promise<E2eImage> {
  const image = await nodeImage(client, { repository: 'e2e/node', tag: 'oci' });
  return { oci: image.reference, ...(await convertBoth(client.registry, 'e2e/node', image.reference)), layerBytes: image.layers.reduce((a, l) => a + l.size, 0) };
}
