// Issue 4, done-when 4: bad sources fail with errors naming the problem (matched on `code` and
// on the named subject), and no tag of the target moves: the tag is pushed last.
import { gzipSync } from 'node:zlib';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isNydusError } from '@nydus-ts/core';
import { RegistryClient } from '@nydus-ts/registry';
import { startRegistry, type TestRegistry } from '@nydus-ts/registry/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertImage } from '../src/index.js';
import type { ConvertImageOptions } from '../src/index.js';
import { busyboxImage, corruptGzipLayers, dotDotLayers, pushRawImage } from './support/images.js';
import { END, fileMember } from '@nydus-ts/testing';

describe('convertImage: bad sources', () => {
  let registry: TestRegistry;
  let authRegistry: TestRegistry;
  let client: RegistryClient;
  let work: string;

  beforeAll(async () => {
    [registry, authRegistry] = await Promise.all([startRegistry(), startRegistry({ auth: 'htpasswd', users: { alice: 'right' } })]);
    client = new RegistryClient({ registry: registry.host, insecure: true });
    work = await mkdtemp(path.join(tmpdir(), 'nydus-convert-err-'));
  });
  afterAll(async () => {
    await client?.close();
    await Promise.all([registry?.stop(), authRegistry?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  /** Converts to `bad/<name>:nydus` and returns the error; the target tag must not exist. */
  async function failure(name: string, source: string, extra: Partial<ConvertImageOptions> = {}): Promise<Error & { code: string }> {
    const target = `${registry.host}/bad/${name}:nydus`;
    const err = await convertImage({ source, target, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true }, ...extra }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isNydusError(err), `expected a NydusError, got ${String(err)}`).toBe(true);
    expect(await client.headManifest(`bad/${name}`, 'nydus')).toBeUndefined();
    return err as Error & { code: string };
  }

  it('not an image: a Helm chart artifact → UNSUPPORTED naming the config media type', async () => {
    const img = await pushRawImage(client, 'src/helm', 'v1', [{ bytes: gzipSync(Buffer.concat([fileMember('Chart.yaml', 'name: x\n'), END])), mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }], { configMediaType: 'application/vnd.cncf.helm.config.v1+json' });
    const err = await failure('helm', img.reference);
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toMatch(/not a container image.*helm\.config/);
  });

  it('not an image: an OCI layout path that is not a layout, a tag that does not exist', async () => {
    const notLayout = await failure('nolayout', `oci:${work}/nothing-here:v1`);
    expect(notLayout.code).toBe('NOT_FOUND');
    expect(notLayout.message).toContain('nothing-here');
    const noTag = await failure('notag', `${registry.host}/src/absent:v9`);
    expect(noTag.code).toBe('NOT_FOUND');
    expect(noTag.message).toContain('src/absent');
  });

  it('corrupt gzip layer → INVALID_FORMAT naming the layer', async () => {
    const img = await pushRawImage(client, 'src/corrupt', 'v1', corruptGzipLayers());
    const err = await failure('corrupt', img.reference);
    expect(err.code).toBe('INVALID_FORMAT');
    expect(err.message).toContain(`layer 1 (${img.layers[1]!.digest})`);
    expect(err.message).toMatch(/gzip/);
  });

  it('a tar entry with a `..` component → INVALID_ARGUMENT naming the entry', async () => {
    const img = await pushRawImage(client, 'src/dotdot', 'v1', dotDotLayers());
    const err = await failure('dotdot', img.reference);
    expect(err.code).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain('..');
    expect(err.message).toContain('escape');
  });

  it('a missing layer blob → NOT_FOUND naming the blob', async () => {
    const img = await busyboxImage(client, { repository: 'src/missing', tag: 'v1' });
    const gone = img.layers[0]!.digest;
    const res = await fetch(`${registry.url}/v2/src/missing/blobs/${gone}`, { method: 'DELETE' });
    expect(res.status).toBe(202);
    const err = await failure('missing', img.reference);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain(gone);
  });

  it('auth failure on the source → UNAUTHENTICATED; with the right credentials it converts', async () => {
    const authed = new RegistryClient({ registry: authRegistry.host, insecure: true, credentials: async () => ({ username: 'alice', password: 'right' }) });
    const img = await busyboxImage(authed, { repository: 'src/private', tag: 'v1' });
    await authed.close();
    const err = await failure('auth', img.reference, { sourceRegistry: { insecure: true, credentials: { username: 'alice', password: 'wrong' } } });
    expect(err.code).toBe('UNAUTHENTICATED');
    expect(err.message).toContain(authRegistry.host);
    const ok = await convertImage({ source: img.reference, target: `${registry.host}/bad/auth:nydus`, sourceRegistry: { insecure: true, credentials: { username: 'alice', password: 'right' } }, targetRegistry: { insecure: true } });
    expect((await client.headManifest('bad/auth', 'nydus'))?.digest).toBe(ok.targetDigest);
  });

  it('an existing tag is left as it was when a later conversion fails', async () => {
    const img = await busyboxImage(client, { repository: 'src/keep', tag: 'v1' });
    const first = await convertImage({ source: img.reference, target: `${registry.host}/bad/keep:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } });
    const corrupt = await pushRawImage(client, 'src/keep', 'broken', [{ bytes: Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }]);
    await expect(convertImage({ source: corrupt.reference, target: `${registry.host}/bad/keep:nydus`, sourceRegistry: { insecure: true }, targetRegistry: { insecure: true } })).rejects.toMatchObject({ code: 'INVALID_FORMAT' });
    expect((await client.headManifest('bad/keep', 'nydus'))?.digest).toBe(first.targetDigest);
  });

  it('invalid options fail before any request (INVALID_ARGUMENT)', async () => {
    const bad = (o: Partial<ConvertImageOptions>) => convertImage({ source: `${registry.host}/src/x:v1`, target: `${registry.host}/bad/opts:nydus`, ...o });
    await expect(bad({ chunkSize: 3000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(bad({ compressor: 'gzip' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(bad({ platform: 'linux/amd64', allPlatforms: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(bad({ target: `${registry.host}/bad/opts@sha256:${'0'.repeat(64)}` })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(bad({ source: 'oci-archive:/nope.tar' })).rejects.toSatisfy((e: unknown) => isNydusError(e));
  });
});
