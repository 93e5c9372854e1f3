import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry } from '@nydus-ts/registry/testing';
import type { TestRegistry } from '@nydus-ts/registry/testing';
import { checkConvertedImage, convertImage } from '../src/index.js';
import { hostLinuxPlatform, minbaseImage, nodeImage } from './support/images.js';

let registry: TestRegistry;
let client: RegistryClient;
const platform = hostLinuxPlatform();

beforeAll(async () => {
  registry = await startRegistry();
  client = new RegistryClient({ registry: registry.host, insecure: true });
});

afterAll(async () => {
  await client?.close();
  await registry?.stop();
});

describe('check on real distributions', () => {
  it('passes on converted Debian minbase and node-on-minbase (thousands of files, every one read by range and compared)', async () => {
    const minbase = await minbaseImage(client, { repository: 'check/minbase', tag: 'v1' });
    const node = await nodeImage(client, { repository: 'check/node', tag: 'v1' });
    for (const img of [minbase, node]) {
      const target = `${registry.host}/${img.repository}:nydus`;
      await convertImage({ source: img.reference, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
      const r = await checkConvertedImage({ source: img.reference, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, platform, concurrency: 16 });
      expect(r.differences, img.repository).toEqual([]);
      expect(r.counts.sourceEntries).toBe(r.counts.targetEntries);
      expect(r.counts.sourceEntries).toBeGreaterThan(5000);
      expect(r.counts.filesRead).toBeGreaterThan(3000);
      // Files are read in blob order through 4 MiB read-ahead windows: about one request per
      // window of chunk data, not one per file.
      expect(r.counts.rangeRequests).toBeLessThan(r.counts.bytesRead / (1 << 20));
    }
  });
});
