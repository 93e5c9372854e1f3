import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DigestMismatchError, FormatError, InvalidArgumentError, MediaType, NotFoundError, throwIfAborted } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageConfig, ImageManifest } from '@nydus-ts/core';
import type { FetchBlobOptions, ImageSource, ManifestData } from '@nydus-ts/registry';
import { detectCompression, type LayerCompression } from '@nydus-ts/image';
import { SNIFF_LENGTH } from '@nydus-ts/image/internal';
import { ArchiveFile } from './archive-file.js';
import type { TarMember } from './tar-index.js';

/** Largest manifest.json / config read whole. */
export const MAX_ARCHIVE_CONFIG_BYTES = 16 << 20;

/** One entry of a `docker save` manifest.json. */
export interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** `docker.io/library/busybox:latest` and `busybox:latest` name the same image. */
function normalizeRepoTag(ref: string): string {
  let r = ref;
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  else if (r.startsWith('index.docker.io/')) r = r.slice('index.docker.io/'.length);
  if (r.startsWith('library/')) r = r.slice('library/'.length);
  const lastSlash = r.lastIndexOf('/');
  if (!r.slice(lastSlash + 1).includes(':') && !r.includes('@')) r += ':latest';
  return r;
}

/**
 * A `docker save` tarball (`docker-archive:FILE[:NAME:TAG]`, also `:@N` for the N-th image).
 * The manifest is synthesized (Docker schema2) from manifest.json: the config descriptor and
 * one layer per listed member, whose digest is the sha256 of the member's bytes, computed at
 * open by streaming each member once. Layers may be plain tars or gzip (the media type says
 * which). Blobs are byte ranges of the file, verified while streaming.
 */
export class DockerArchiveSource implements ImageSource {
  readonly name: string;
  readonly archive: ArchiveFile;
  readonly entry: DockerArchiveEntry;
  readonly manifest: ManifestData;
  readonly #blobs: Map<Digest, TarMember>;

  private constructor(name: string, archive: ArchiveFile, entry: DockerArchiveEntry, manifest: ManifestData, blobs: Map<Digest, TarMember>) {
    this.name = name;
    this.archive = archive;
    this.entry = entry;
    this.manifest = manifest;
    this.#blobs = blobs;
  }

  static async open(file: string, tag?: string, signal?: AbortSignal): Promise<DockerArchiveSource> {
    const archive = await ArchiveFile.open(file, signal);
    if (!archive.has('manifest.json')) {
      throw new NotFoundError(`archive ${file} is not a docker save archive: it has no manifest.json${archive.has('index.json') ? ' (it has an index.json: try oci-archive:)' : ''}`);
    }
    let entries: DockerArchiveEntry[];
    try {
      entries = JSON.parse((await archive.readSmall(archive.member('manifest.json'), MAX_ARCHIVE_CONFIG_BYTES)).toString('utf8')) as DockerArchiveEntry[];
    } catch (err) {
      if (err instanceof SyntaxError) throw new FormatError('manifest.json', `archive ${file}: manifest.json is not JSON`, { cause: err });
      throw err;
    }
    if (!Array.isArray(entries) || entries.length === 0) throw new FormatError('manifest.json', `archive ${file}: manifest.json lists no images`);
    for (const [i, e] of entries.entries()) {
      if (typeof e?.Config !== 'string' || !Array.isArray(e.Layers) || e.Layers.some((l) => typeof l !== 'string')) {
        throw new FormatError(`manifest.json[${i}]`, `archive ${file}: entry ${i} lacks Config or Layers`);
      }
    }
    const entry = pickEntry(file, entries, tag);
    const blobs = new Map<Digest, TarMember>();

    const configMember = archive.member(entry.Config, 'config');
    const configBytes = await archive.readSmall(configMember, MAX_ARCHIVE_CONFIG_BYTES);
    const configDigest: Digest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
    blobs.set(configDigest, configMember);
    let config: ImageConfig;
    try {
      config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    } catch (err) {
      throw new FormatError('config', `archive ${file}: config ${entry.Config} is not JSON`, { cause: err });
    }
    const diffIds = config?.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== entry.Layers.length) {
      throw new FormatError('config.rootfs.diff_ids', `archive ${file}: config lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff_ids for ${entry.Layers.length} layers`);
    }

    const layers: Descriptor[] = [];
    const known = new Map<string, Descriptor>();
    for (const [i, layerName] of entry.Layers.entries()) {
      throwIfAborted(signal);
      const member = archive.member(layerName, `layer ${i}`);
      let desc = known.get(member.name);
      if (!desc) {
        const { digest, compression } = await hashMember(archive, member, signal);
        const mediaType = compression === 'gzip' ? MediaType.DockerLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.DockerLayer;
        desc = { mediaType, digest, size: member.size };
        known.set(member.name, desc);
        blobs.set(digest, member);
      }
      // An uncompressed layer's digest is its diff_id: a cheap integrity check of the archive.
      if (desc.mediaType === MediaType.DockerLayer && desc.digest !== diffIds[i]) {
        throw new DigestMismatchError(`archive ${file}: layer ${i} (${layerName}) against config diff_id`, diffIds[i]!, desc.digest);
      }
      layers.push(desc);
    }
    const manifestJson: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: configBytes.length, digest: configDigest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifestJson));
    const manifest: ManifestData = {
      descriptor: { mediaType: MediaType.DockerManifest, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length },
      bytes,
    };
    return new DockerArchiveSource(`docker-archive:${file}${tag === undefined ? '' : `:${tag}`}`, archive, entry, manifest, blobs);
  }

  async resolve(): Promise<ManifestData> {
    return this.manifest;
  }

  async getManifest(descriptor: Descriptor): Promise<ManifestData> {
    if (descriptor.digest !== this.manifest.descriptor.digest) {
      throw new NotFoundError(`manifest ${descriptor.digest} is not in archive ${this.archive.file} (its image is ${this.manifest.descriptor.digest})`);
    }
    return this.manifest;
  }

  fetchBlob(descriptor: Descriptor, options: FetchBlobOptions = {}): Readable {
    const member = this.#blobs.get(descriptor.digest);
    if (!member) throw new NotFoundError(`blob ${descriptor.digest} is not in archive ${this.archive.file}`);
    if (descriptor.size !== member.size) {
      throw new DigestMismatchError(`blob ${descriptor.digest} size in archive ${this.archive.file}`, String(descriptor.size), String(member.size));
    }
    return this.archive.verifiedStream(member, descriptor.digest, `blob ${descriptor.digest} (${member.name}) in archive ${this.archive.file}`, options);
  }
}

function pickEntry(file: string, entries: DockerArchiveEntry[], tag: string | undefined): DockerArchiveEntry {
  const all = entries.flatMap((e) => e.RepoTags ?? []);
  if (tag === undefined) {
    if (entries.length === 1) return entries[0]!;
    throw new InvalidArgumentError(`archive ${file} holds ${entries.length} images; name one with docker-archive:${file}:NAME:TAG or :@N (tags: ${all.join(', ') || 'none'})`);
  }
  const at = /^@(\d+)$/.exec(tag);
  if (at) {
    const e = entries[Number(at[1])];
    if (!e) throw new NotFoundError(`archive ${file} has no image @${at[1]} (it holds ${entries.length})`);
    return e;
  }
  const want = normalizeRepoTag(tag);
  const found = entries.filter((e) => (e.RepoTags ?? []).some((t) => t === tag || normalizeRepoTag(t) === want));
  if (found.length === 0) throw new NotFoundError(`tag "${tag}" not found in archive ${file} (tags: ${all.join(', ') || 'none'})`);
  if (found.length > 1) throw new InvalidArgumentError(`tag "${tag}" names ${found.length} images in archive ${file}`);
  return found[0]!;
}

async function hashMember(archive: ArchiveFile, member: TarMember, signal?: AbortSignal): Promise<{ digest: Digest; compression: LayerCompression }> {
  const hash = createHash('sha256');
  let head: number[] = [];
  let seen = 0;
  for await (const chunk of archive.stream(member, signal)) {
    const buf = chunk as Buffer;
    if (head.length < SNIFF_LENGTH) head = [...head, ...buf.subarray(0, SNIFF_LENGTH - head.length)];
    hash.update(buf);
    seen += buf.length;
  }
  if (seen !== member.size) {
    throw new FormatError('tar.entry.data', `archive ${archive.file}: member "${member.name}" gave ${seen} of ${member.size} bytes`, { offset: member.offset });
  }
  return { digest: `sha256:${hash.digest('hex')}`, compression: detectCompression(Uint8Array.from(head)) };
}
