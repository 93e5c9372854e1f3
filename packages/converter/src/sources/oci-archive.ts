import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { DigestMismatchError, FormatError, InvalidArgumentError, NotFoundError, parseDigest } from '@nydus-ts/core';
import type { Descriptor, ImageIndex } from '@nydus-ts/core';
import { refNameAnnotation } from '@nydus-ts/registry';
import { sniffManifestMediaType } from '@nydus-ts/registry/internal';
import type { FetchBlobOptions, ImageSource, ManifestData } from '@nydus-ts/registry';
import { ArchiveFile } from './archive-file.js';

/** Largest index / manifest read whole. */
export const MAX_ARCHIVE_MANIFEST_BYTES = 4 << 20;

/** Annotation containerd and buildkit put the full image name in. */
const containerdNameAnnotation = 'io.containerd.image.name';

/**
 * An OCI image layout packed in a tar (`oci-archive:FILE[:TAG]`, as `buildx --output
 * type=oci` and `skopeo copy ... oci-archive:` write). The tar is indexed once by its headers;
 * blobs are served as byte ranges of the file, verified against their digests while streaming.
 */
export class OciArchiveSource implements ImageSource {
  readonly name: string;
  readonly archive: ArchiveFile;
  readonly tag: string | undefined;
  readonly index: ImageIndex;

  private constructor(archive: ArchiveFile, tag: string | undefined, index: ImageIndex) {
    this.archive = archive;
    this.tag = tag;
    this.index = index;
    this.name = `oci-archive:${archive.file}${tag === undefined ? '' : `:${tag}`}`;
  }

  static async open(file: string, tag?: string, signal?: AbortSignal): Promise<OciArchiveSource> {
    const archive = await ArchiveFile.open(file, signal);
    if (!archive.has('index.json')) {
      throw new NotFoundError(`archive ${file} is not an OCI image layout: it has no index.json${archive.has('manifest.json') ? ' (it has a manifest.json: try docker-archive:)' : ''}`);
    }
    const bytes = await archive.readSmall(archive.member('index.json'), MAX_ARCHIVE_MANIFEST_BYTES);
    let index: ImageIndex;
    try {
      index = JSON.parse(bytes.toString('utf8')) as ImageIndex;
    } catch (err) {
      throw new FormatError('index.json', `archive ${file}: index.json is not JSON`, { cause: err });
    }
    if (!index || !Array.isArray(index.manifests)) throw new FormatError('index.json.manifests', `archive ${file}: index.json has no manifests array`);
    return new OciArchiveSource(archive, tag, index);
  }

  /** The index.json entry the tag names (or the only one). */
  findManifest(): Descriptor {
    const entries = this.index.manifests;
    const file = this.archive.file;
    if (this.tag === undefined) {
      if (entries.length === 1) return entries[0]!;
      const tags = entries.map((m) => m.annotations?.[refNameAnnotation]).filter(Boolean);
      throw new InvalidArgumentError(`archive ${file} holds ${entries.length} images; name one with oci-archive:${file}:TAG (tags: ${tags.join(', ') || 'none'})`);
    }
    const tag = this.tag;
    const matches = (m: Descriptor): boolean => {
      const ref = m.annotations?.[refNameAnnotation];
      const full = m.annotations?.[containerdNameAnnotation];
      return ref === tag || full === tag || (full !== undefined && full.endsWith(`:${tag}`) && !tag.includes(':'));
    };
    const found = entries.filter((m) => m.annotations?.[refNameAnnotation] === tag);
    const pick = found.length > 0 ? found : entries.filter(matches);
    if (pick.length === 0) {
      const tags = entries.map((m) => m.annotations?.[refNameAnnotation]).filter(Boolean);
      throw new NotFoundError(`tag "${tag}" not found in archive ${file} (tags: ${tags.join(', ') || 'none'})`);
    }
    if (pick.length > 1 && new Set(pick.map((m) => m.digest)).size > 1) {
      throw new InvalidArgumentError(`tag "${tag}" names ${pick.length} different images in archive ${file}`);
    }
    return pick[0]!;
  }

  async resolve(): Promise<ManifestData> {
    return this.getManifest(this.findManifest());
  }

  async getManifest(descriptor: Descriptor): Promise<ManifestData> {
    const { algorithm, hex } = parseDigest(descriptor.digest);
    const member = this.archive.member(`blobs/${algorithm}/${hex}`, `blob ${descriptor.digest}`);
    const bytes = await this.archive.readSmall(member, MAX_ARCHIVE_MANIFEST_BYTES);
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (actual !== descriptor.digest) throw new DigestMismatchError(`manifest in archive ${this.archive.file}`, descriptor.digest, actual);
    const mediaType = descriptor.mediaType || sniffManifestMediaType(bytes) || 'application/octet-stream';
    return { descriptor: { mediaType, digest: descriptor.digest, size: bytes.length }, bytes };
  }

  fetchBlob(descriptor: Descriptor, options: FetchBlobOptions = {}): Readable {
    const { algorithm, hex } = parseDigest(descriptor.digest);
    const member = this.archive.member(`blobs/${algorithm}/${hex}`, `blob ${descriptor.digest}`);
    if (descriptor.size !== member.size) {
      throw new DigestMismatchError(`blob ${descriptor.digest} size in archive ${this.archive.file}`, String(descriptor.size), String(member.size));
    }
    return this.archive.verifiedStream(member, descriptor.digest, `blob ${descriptor.digest} in archive ${this.archive.file}`, options);
  }
}
