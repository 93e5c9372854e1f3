// End to end with a real application image: Debian minbase (debootstrap) plus this machine's
// Node.js, as native Nydus and zran, run by containerd through the nydus-ts snapshotter with one
// daemon per image. `node -e` prints what it computes and fetches only a small part of the image
// from the registry (laziness, counted by a proxy in front of the registry); the node binary in
// the container has the host binary's sha256; npm (many small modules) runs.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOTTER, blobBytesSince, startE2eEnv } from '../support/env.js';
import type { E2eEnv } from '../support/env.js';
import { nodeImages } from '../support/images.js';
import type { E2eImage } from '../support/images.js';
import { pull } from '../support/cli.js';

let env: E2eEnv;
let images: E2eImage;

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

beforeAll(async () => {
  env = await startE2eEnv({ daemonMode: 'dedicated' });
  images = await nodeImages(env.client);
}, 1_800_000);

afterAll(async () => {
  await env?.stop();
}, 300_000);

/** Every blob a Nydus image's data comes from: its data layers and, for zran, the original layers. */
async function dataBlobs(ref: string): Promise<string[]> {
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  const manifest = JSON.parse((await env.client.getManifest('e2e/node', tag)).bytes.toString()) as { layers: { digest: string; annotations?: Record<string, string> }[] };
  const out: string[] = [];
  for (const l of manifest.layers.slice(0, -1)) {
    out.push(l.digest);
    const original = l.annotations?.['containerd.io/snapshot/nydus-ref'];
    if (original) out.push(original);
  }
  return out;
}

describe('node on Debian minbase through containerd and the nydus-ts snapshotter', () => {
  for (const kind of ['native', 'zran'] as const) {
    it(`${kind}: node -e runs after a lazy pull, fetching a small part of the image`, async () => {
      const ref = images[kind];
      await pull(env.containerd.address, SNAPSHOTTER, ref);
      const since = env.proxy.requests.length;
      const r = await env.ctrRun(['--rm', ref, `node-${kind}`, 'node', '-e', 'console.log("sum", [1, 2, 3].reduce((a, b) => a + b), process.version)']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`sum 6 ${process.version}`);
      const fetched = blobBytesSince(env.proxy, since, await dataBlobs(ref));
      process.stderr.write(`e2e node ${kind}: node -e fetched ${(fetched / 1e6).toFixed(1)} MB of ${(images.layerBytes / 1e6).toFixed(1)} MB\n`);
      expect(fetched).toBeGreaterThan(0);
      // measured: ~21 MB (native) and ~29 MB (zran) of the 90 MB image: node touches much of its binary
      expect(fetched).toBeLessThan(images.layerBytes * 0.4);
    });
  }

  it('native: the node binary in the container has the host binary’s sha256; npm runs', async () => {
    const host = await sha256File(process.execPath);
    const out = await env.containerd.ctrOk(['run', '--rm', '--snapshotter', SNAPSHOTTER, images.native, 'node-sha', 'sha256sum', '/usr/local/bin/node'], { timeoutMs: 600_000 });
    expect(out.split(' ')[0]).toBe(host);
    const npm = await env.ctrRun(['--rm', images.native, 'node-npm', 'node', '/usr/local/lib/node_modules/npm/bin/npm-cli.js', '--version']);
    expect(npm.code, npm.stderr).toBe(0);
    expect(npm.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
