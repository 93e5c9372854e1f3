import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, copyImage } from '../src/index.js';
import { pushGeneratedImage, startRegistry } from '../src/testing/index.js';
import type { TestRegistry } from '../src/testing/index.js';

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startRegistry();
});
afterAll(async () => {
  await reg?.stop();
});

describe('smoke', () => {
  it('pushes and copies', async () => {
    const client = new RegistryClient({ registry: reg.host, insecure: true });
    const img = await pushGeneratedImage(client, 'src/app', { tag: 'v1', layers: [{ size: 1_000_000 }, { size: 10, kind: 'compressible' }] });
    const r = await copyImage({ source: `${reg.host}/src/app:v1`, target: `${reg.host}/dst/app:v1`, sourceOptions: { insecure: true }, targetOptions: { insecure: true } });
    console.log(r);
    expect(r.digest).toBe(img.manifest.descriptor.digest);
    await client.close();
  });
});
