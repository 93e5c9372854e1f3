// Every kind of image source against the shared ImageSource suite: registry (a manifest and an
// index), oci: layout, oci-archive:, docker-archive: (skopeo-written) and dir: (its one layer is
// synthesised: read as a directory, never served as a blob).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { imageSourceSuite } from '@nydus-ts/registry/conformance';
import { pushTwoPlatformImage, startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { runTool } from '@nydus-ts/testing';
import { DirectoryImageSource, openImageSource } from '../src/index.js';
import { busyboxImage, writeOciLayout } from './support/images.js';

let registry: TestRegistry;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(path.join(tmpdir(), 'nydus-source-suite-'));
  const client = new RegistryClient({ registry: registry.host, insecure: true });
  const busybox = await busyboxImage(client, { repository: 'suite/busybox', tag: 'v1' });
  await pushTwoPlatformImage(client, 'suite/multi', 'v1');
  await writeOciLayout(client, busybox, path.join(work, 'layout'), 'v1');
  await client.close();
  await runTool('tar', ['-C', path.join(work, 'layout'), '-cf', path.join(work, 'layout.tar'), '.']);
  await runTool('skopeo', ['copy', '-q', `docker://${registry.host}/suite/busybox:v1`, `docker-archive:${path.join(work, 'docker.tar')}:busybox:v1`, '--src-tls-verify=false']);
  await mkdir(path.join(work, 'rootfs/etc'), { recursive: true });
  await writeFile(path.join(work, 'rootfs/etc/hostname'), 'suite\n');
}, 300_000);
afterAll(async () => {
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

const opened = async (spec: string) => {
  const o = await openImageSource(spec, { registry: { insecure: true } });
  return { source: o.source, close: () => o.close() };
};

imageSourceSuite('registry (manifest)', () => opened(`${registry.host}/suite/busybox:v1`));
imageSourceSuite('registry (index)', () => opened(`${registry.host}/suite/multi:v1`));
imageSourceSuite('oci: layout', () => opened(`oci:${path.join(work, 'layout')}:v1`));
imageSourceSuite('oci-archive:', () => opened(`oci-archive:${path.join(work, 'layout.tar')}:v1`));
imageSourceSuite('docker-archive:', () => opened(`docker-archive:${path.join(work, 'docker.tar')}:busybox:v1`));
imageSourceSuite('dir:', async () => ({ source: await DirectoryImageSource.open(path.join(work, 'rootfs')), layers: 'synthesised' }));
