import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MediaType, isNydusError } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import { RegistryClient, RegistryResponseError } from '../src/index.js';
import { generatedStream, pushGeneratedImage, startFaultProxy, startRegistry } from '../src/testing/index.js';
import type { TestRegistry } from '../src/testing/index.js';

let reg: TestRegistry;
let client: RegistryClient;

beforeAll(async () => {
  reg = await startRegistry();
  client = new RegistryClient({ registry: reg.host, insecure: true });
});
afterAll(async () => {
  await client?.close();
  await reg?.stop();
});

const sha = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function pushBytes(repo: string, data: Buffer, chunkSize = 0): Promise<Digest> {
  const digest = sha(data);
  await client.pushBlob(repo, { digest, size: data.length }, Readable.from([data]), { chunkSize });
  return digest;
}

describe('RegistryClient against docker-registry', () => {
  it('falls back to plain HTTP only when insecure, and fails clearly otherwise', async () => {
    const secure = new RegistryClient({ registry: reg.host, retry: { attempts: 1 } });
    const err = await secure.headBlob('x/y', `sha256:${'0'.repeat(64)}`).catch((e: unknown) => e);
    expect(isNydusError(err, 'UNAVAILABLE')).toBe(true);
    expect(String(err)).toContain(`https://${reg.host}/v2/x/y/blobs/`);
    await secure.close();
    expect(await client.headBlob('x/y', `sha256:${'0'.repeat(64)}`)).toBeUndefined();
  });

  it('puts, gets and heads manifests of all four media types byte for byte', async () => {
    const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const cfgDigest = await pushBytes('m/t', cfg);
    const layer = Buffer.from('layer-bytes');
    const layerDigest = await pushBytes('m/t', layer);
    // Odd whitespace on purpose: the digest must be of these exact bytes.
    const manifest = Buffer.from(`{ "schemaVersion": 2,\n  "mediaType": "${MediaType.DockerManifest}", "config": {"mediaType":"${MediaType.DockerConfig}","digest":"${cfgDigest}","size":${cfg.length}},\n "layers": [{"mediaType":"${MediaType.DockerLayerGzip}","digest":"${layerDigest}","size":${layer.length}}] }\n`);
    const ociManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: cfgDigest, size: cfg.length }, layers: [] }));
    const md = await client.putManifest('m/t', 'docker', manifest, MediaType.DockerManifest);
    const od = await client.putManifest('m/t', 'oci', ociManifest, MediaType.OciManifest);
    expect(md).toBe(sha(manifest));
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.DockerManifestList, manifests: [{ mediaType: MediaType.DockerManifest, digest: md, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [{ mediaType: MediaType.OciManifest, digest: od, size: ociManifest.length, platform: { os: 'linux', architecture: 'arm64' } }] }));
    await client.putManifest('m/t', 'list', list, MediaType.DockerManifestList);
    await client.putManifest('m/t', 'index', index, MediaType.OciIndex);
    for (const [tag, bytes, type] of [['docker', manifest, MediaType.DockerManifest], ['oci', ociManifest, MediaType.OciManifest], ['list', list, MediaType.DockerManifestList], ['index', index, MediaType.OciIndex]] as const) {
      const got = await client.getManifest('m/t', tag);
      expect(got.bytes.equals(bytes)).toBe(true);
      expect(got.descriptor).toEqual({ mediaType: type, digest: sha(bytes), size: bytes.length });
      expect(await client.headManifest('m/t', tag)).toEqual({ mediaType: type, digest: sha(bytes), size: bytes.length });
      const byDigest = await client.getManifest('m/t', sha(bytes));
      expect(byDigest.bytes.equals(bytes)).toBe(true);
    }
    expect(await client.headManifest('m/t', 'missing')).toBeUndefined();
    const err = await client.getManifest('m/t', 'missing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryResponseError);
    const re = err as RegistryResponseError;
    expect([re.code, re.status, re.method]).toEqual(['NOT_FOUND', 404, 'GET']);
    expect(re.url).toBe(`http://${reg.host}/v2/m/t/manifests/missing`);
    expect(re.errors[0]?.code).toBe('MANIFEST_UNKNOWN');
  });

  it('streams blobs with verification and serves exact ranges (206 + Content-Range)', async () => {
    const data = await collect(generatedStream(3 * 1024 * 1024 + 17, 'range-test'));
    const digest = await pushBytes('b/r', data);
    expect(await client.headBlob('b/r', digest)).toBe(data.length);
    expect((await collect(client.fetchBlob('b/r', { digest, size: data.length }))).equals(data)).toBe(true);
    const part = await collect(client.fetchRange('b/r', digest, 1_000_000, 123_457));
    expect(part.equals(data.subarray(1_000_000, 1_123_457))).toBe(true);
    // A wrong size is a protocol error, a wrong digest a DATA_LOSS.
    const wrong = await collect(client.fetchBlob('b/r', { digest, size: data.length - 1 })).catch((e: unknown) => e);
    expect(isNydusError(wrong, 'DATA_LOSS')).toBe(true);
  });

  it('pushes monolithically and in chunks, and uploads streams of unknown size', async () => {
    const data = await collect(generatedStream(2_500_000, 'chunks'));
    const proxy = await startFaultProxy(reg.url);
    const via = new RegistryClient({ registry: proxy.host, insecure: true });
    try {
      const digest = sha(data);
      await via.pushBlob('c/a', { digest, size: data.length }, Readable.from([data]), { chunkSize: 1 << 20 });
      const patches = proxy.requests.filter((r) => r.method === 'PATCH');
      expect(patches.map((p) => p.requestBytes)).toEqual([1 << 20, 1 << 20, data.length - 2 * (1 << 20)]);
      expect((await collect(client.fetchBlob('c/a', { digest, size: data.length }))).equals(data)).toBe(true);
      proxy.requests.length = 0;
      await via.pushBlob('c/b', { digest, size: data.length }, Readable.from([data]));
      expect(proxy.requests.filter((r) => r.method === 'PUT').map((r) => r.requestBytes)).toEqual([data.length]);
      for (const chunkSize of [0, 700_000]) {
        const upload = await via.createUpload('c/u', { chunkSize });
        await pipeline(generatedStream(2_500_000, 'chunks'), upload);
        expect(await upload.commit()).toEqual({ digest, size: data.length });
      }
      expect(await client.headBlob('c/u', digest)).toBe(data.length);
    } finally {
      await via.close();
      await proxy.stop();
    }
  });

  it('opens the source of a push while the upload POST is under way', async () => {
    // A registry stand-in that answers the POST only once the source has been read from (or
    // after 2 s): the push overlaps its first source round trip with the upload session.
    const data = Buffer.from('bytes read while the upload session is created');
    let readStarted = false;
    let readBeforeAnswer: boolean | undefined;
    let received = Buffer.alloc(0);
    const server = createServer((req, res) => {
      if (req.method === 'POST') {
        req.resume();
        const deadline = Date.now() + 2000;
        const answer = (): void => {
          if (!readStarted && Date.now() < deadline) return void setTimeout(answer, 5);
          readBeforeAnswer = readStarted;
          res.writeHead(202, { location: '/v2/o/v/blobs/uploads/1', 'content-length': '0' }).end();
        };
        answer();
        return;
      }
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        received = Buffer.concat(parts);
        res.writeHead(req.method === 'PUT' ? 201 : 404, { 'content-length': '0' }).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stand = new RegistryClient({ registry: `127.0.0.1:${(server.address() as AddressInfo).port}`, insecure: true });
    try {
      const source = new Readable({
        read() {
          readStarted = true;
          this.push(data);
          this.push(null);
        },
      });
      await stand.pushBlob('o/v', { digest: sha(data), size: data.length }, source);
      expect(readBeforeAnswer).toBe(true);
      expect(received.equals(data)).toBe(true);
    } finally {
      await stand.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('reports a source that fails while the upload starts, sends nothing and drops the session', async () => {
    const data = Buffer.from('never sent');
    const failing = new Readable({
      read() {
        this.destroy(new Error('source broke'));
      },
    });
    const proxy = await startFaultProxy(reg.url);
    const viaProxy = new RegistryClient({ registry: proxy.host, insecure: true });
    try {
      const err = await viaProxy.pushBlob('x/failing', { digest: sha(data), size: data.length }, failing).catch((e: unknown) => e);
      expect((err as Error).message).toBe('source broke');
      expect(proxy.requests.map((q) => `${q.method} ${q.status}`)).toEqual(['POST 202', 'DELETE 204']);
      expect(await client.headBlob('x/failing', sha(data))).toBeUndefined();
    } finally {
      await viaProxy.close();
      await proxy.stop();
    }
  });

  it('refuses to commit an upload whose bytes do not match, leaving nothing behind', async () => {
    const upload = await client.createUpload('c/bad', { chunkSize: 0 });
    upload.end(Buffer.from('not what was promised'));
    const promised = sha(Buffer.from('something else'));
    const err = await upload.commit({ digest: promised }).catch((e: unknown) => e);
    expect(isNydusError(err, 'DATA_LOSS')).toBe(true);
    expect(await client.headBlob('c/bad', promised)).toBeUndefined();
    // A monolithic push of wrong bytes is refused by the registry and not retried (400).
    const err2 = await client.pushBlob('c/bad', { digest: promised, size: 21 }, Readable.from([Buffer.from('not what was promised')])).catch((e: unknown) => e);
    expect((err2 as RegistryResponseError).status).toBe(400);
    expect(await client.headBlob('c/bad', promised)).toBeUndefined();
  });

  it('commits an upload that does not hash under the caller\'s digest, which the registry checks', async () => {
    const data = Buffer.from('hashed by the caller, checked by the registry');
    const noDigest = await client.createUpload('c/nohash', { verifyDigest: false });
    noDigest.end(data);
    expect(isNydusError(await noDigest.commit().catch((e: unknown) => e), 'INVALID_ARGUMENT')).toBe(true);

    const proxy = await startFaultProxy(reg.url);
    const via = new RegistryClient({ registry: proxy.host, insecure: true });
    try {
      const wrong = sha(Buffer.from('other bytes'));
      const refused = await via.createUpload('c/nohash', { verifyDigest: false });
      refused.end(data);
      const err = await refused.commit({ digest: wrong, size: data.length }).catch((e: unknown) => e);
      expect((err as RegistryResponseError).status).toBe(400);
      await vi.waitFor(() => expect(proxy.requests.map((q) => q.method)).toContain('DELETE'));
      expect(await client.headBlob('c/nohash', wrong)).toBeUndefined();

      const upload = await via.createUpload('c/nohash', { verifyDigest: false });
      upload.end(data);
      expect(await upload.commit({ digest: sha(data), size: data.length })).toEqual({ digest: sha(data), size: data.length });
      expect((await collect(client.fetchBlob('c/nohash', { digest: sha(data), size: data.length }))).equals(data)).toBe(true);
    } finally {
      await via.close();
      await proxy.stop();
    }
  });

  it('mounts blobs across repositories of one registry', async () => {
    const data = Buffer.from('mount me');
    const digest = await pushBytes('mount/src', data);
    expect(await client.mountBlob('mount/dst', digest, 'mount/src')).toBe(true);
    expect(await client.headBlob('mount/dst', digest)).toBe(data.length);
    const absent = sha(Buffer.from('absent'));
    expect(await client.mountBlob('mount/dst', absent, 'mount/src')).toBe(false);
  });

  it('reads through mirrors first and falls back to the origin', async () => {
    const img = await pushGeneratedImage(client, 'mirror/app', { tag: 'v1', layers: [{ size: 100_000 }] });
    const mirror = await startFaultProxy(reg.url);
    const dead = 'http://127.0.0.1:1';
    const origin = await startFaultProxy(reg.url);
    const viaMirror = new RegistryClient({ registry: origin.host, insecure: true, mirrors: [dead, mirror.url], retry: { baseDelayMs: 10 } });
    try {
      const m = await viaMirror.getManifest('mirror/app', 'v1');
      expect(m.descriptor.digest).toBe(img.manifest.descriptor.digest);
      const layer = await collect(viaMirror.fetchBlob('mirror/app', img.layers[0]!));
      expect(layer.length).toBe(100_000);
      const blobGets = mirror.requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/v2/mirror/app/blobs/${img.layers[0]!.digest}?`));
      expect(blobGets.map((r) => new URL(r.path, 'http://x').searchParams.get('ns'))).toEqual([origin.host]);
      expect(origin.requests.filter((r) => r.method === 'GET')).toEqual([]);
      // The mirror lacks a blob (404): the origin serves it.
      mirror.setRules([{ method: 'GET', path: /\/blobs\//, action: { kind: 'status', status: 404 }, times: Infinity }]);
      const again = await collect(viaMirror.fetchBlob('mirror/app', img.config));
      expect(again.length).toBe(img.config.size);
      expect(origin.requests.some((r) => r.method === 'GET' && r.path.includes(img.config.digest))).toBe(true);
    } finally {
      await viaMirror.close();
      await mirror.stop();
      await origin.stop();
    }
  });
});
