import { MediaType } from '@nydus-ts/core';
import type { Descriptor, ImageManifest } from '@nydus-ts/core';
import { BootstrapReader, isSeparateBlob } from '@nydus-ts/format';
import type { ExtraBlobsContext } from '@nydus-ts/registry';
import { readBootstrapLayer } from './bootstrap-layer.js';
import { Annotation } from './nydus-conventions.js';

/**
 * The blobs a targz-ref ("zran") image needs that its manifest does not list: the original
 * layers its bootstrap's reference blobs point into (spec §4.3, §5.3). For `copyImage`'s
 * `extraBlobs`, so that a copy carries them along; other images need none (no nydus-ref layer:
 * nothing is fetched).
 */
export async function referencedOriginalLayers(manifest: ImageManifest, ctx: ExtraBlobsContext): Promise<Descriptor[]> {
  const layers = manifest.layers ?? [];
  if (!layers.some((l) => l.annotations?.[Annotation.NydusRef] !== undefined)) return [];
  const boot = layers[layers.length - 1]!;
  if (boot.annotations?.[Annotation.NydusBootstrap] !== 'true') return [];
  const content = await readBootstrapLayer(ctx.source.fetchBlob(boot, ctx.signal ? { signal: ctx.signal } : {}), ctx.signal ? { signal: ctx.signal } : {});
  if (content.bootstrap === undefined) return [];
  const reader = await BootstrapReader.open(content.bootstrap, ctx.signal ? { signal: ctx.signal } : {});
  const listed = new Set(layers.map((l) => l.digest));
  return reader.blobs
    .filter((b) => isSeparateBlob(b) && !listed.has(`sha256:${b.blobId}`))
    .map((b) => ({ mediaType: b.compressor === 'gzip' ? MediaType.OciLayerGzip : MediaType.OciLayer, digest: `sha256:${b.blobId}` as const, size: b.entry.compressedSize }));
}
