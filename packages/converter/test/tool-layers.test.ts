// Layers that real tools write convert (issue 9). `umoci insert` (umoci 0.4.7) ends its layer
// right after the last file's data: no padding to 512 bytes, no end-of-archive blocks.
// containerd and GNU tar accept such layers; so does Go's archive/tar, and so must convert.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { RafsFileReader } from '@nydus-ts/format';
import { RegistryBlobBackend } from '@nydus-ts/backend';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConvertedImage, convertImage } from '../src/index.js';
import { hostLinuxPlatform } from './support/images.js';
import { fetchNydusImage } from './support/nydus-image.js';

const run = promisify(execFile);

let registry: TestRegistry;
let client: RegistryClient;
let work: string;

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
  work = await mkdtemp(path.join(tmpdir(), 'nydus-tool-layers-'));
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function readFileOf(repository: string, file: string): Promise<Buffer> {
  const image = await fetchNydusImage(client, repository, 'nydus');
  const nid = image.reader.lookup(file);
  if (nid === undefined) throw new Error(`${file} is not in the image`);
  const parts: Uint8Array[] = [];
  for await (const piece of new RafsFileReader(image.reader, new RegistryBlobBackend(client, repository)).stream(nid)) parts.push(piece);
  return Buffer.concat(parts);
}

describe('layers written by umoci insert', () => {
  it('convert reads a layer whose last file has its data but no padding and no end blocks; check agrees', async () => {
    const layout = path.join(work, 'umoci');
    const source = path.join(work, 'insert');
    await mkdir(path.join(source, 'deep/sub'), { recursive: true });
    await writeFile(path.join(source, 'deep/sub/file.txt'), 'some text\n');
    // 501 bytes: the layer ends 11 bytes short of a block boundary.
    const last = Buffer.alloc(501, 0x5a);
    await writeFile(path.join(source, 'last.bin'), last);
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:v1`]);
    await run('umoci', ['insert', '--image', `${layout}:v1`, source, '/opt']);

    // The layer really is what the issue describes: it ends right after last.bin's data.
    const blobs = path.join(layout, 'blobs/sha256');
    const layers: Buffer[] = [];
    for (const name of await readdir(blobs)) {
      const bytes = await readFile(path.join(blobs, name));
      if (bytes[0] === 0x1f && bytes[1] === 0x8b) layers.push(gunzipSync(bytes));
    }
    expect(layers).toHaveLength(1);
    expect(layers[0]!.length % 512).toBe(501);
    expect(layers[0]!.subarray(-501)).toEqual(last);

    await convertImage({ source: `oci:${layout}:v1`, target: `${registry.host}/umoci/insert:nydus`, targetRegistry: { insecure: true } });
    expect(await readFileOf('umoci/insert', '/opt/last.bin')).toEqual(last);
    expect((await readFileOf('umoci/insert', '/opt/deep/sub/file.txt')).toString()).toBe('some text\n');

    const report = await checkConvertedImage({
      source: `oci:${layout}:v1`,
      target: `${registry.host}/umoci/insert:nydus`,
      targetRegistry: { insecure: true },
      platform: hostLinuxPlatform(),
    });
    expect(report.differences).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
