import { MediaType } from '@nydus-ts/core';

/** Manifest types this client reads, in preference order, for the `Accept` header. */
export const manifestAcceptTypes: readonly string[] = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
];

export const manifestAcceptHeader = [...manifestAcceptTypes, '*/*;q=0.5'].join(', ');

/** The media type of manifest bytes: the `mediaType` field, else guessed from the shape. */
export function sniffManifestMediaType(bytes: Uint8Array): string | undefined {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown; manifests?: unknown; config?: unknown };
    if (typeof json.mediaType === 'string') return json.mediaType;
    if (Array.isArray(json.manifests)) return MediaType.OciIndex;
    if (json.config && typeof json.config === 'object') return MediaType.OciManifest;
  } catch {
    return undefined;
  }
  return undefined;
}
