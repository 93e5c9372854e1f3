import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, DigestMismatchError, FormatError, InvalidArgumentError, MediaType, NotFoundError, fileSystemError, parseDigest } from '@nydus-ts/core';
import type { Descriptor, Digest, ImageIndex } from '@nydus-ts/core';
import { makeDirectories, removeCreatedDirectories } from '@nydus-ts/core/files';
import type { FetchBlobOptions, ImageSource, ImageTarget, PushBlobTargetOptions } from './image-store.js';
import type { ManifestData } from './registry-client.js';
import { VerifyStream } from './verify-stream.js';

/** Annotation holding a tag in an OCI layout's `index.json`. */
export const refNameAnnotation = 'org.opencontainers.image.ref.name';

const maxManifestBytes = 4 << 20;

/**
 * An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`). Blobs are
 * written under a temporary name, verified, then renamed; `index.json` is replaced atomically.
 * The instance remembers what it created (directories, the `oci-layout` file, blobs) so that a
 * failed run can remove it again (`removeCreated`).
 */
export class OciLayout {
  readonly dir: string;
  /** Directories this instance made, outermost first; `[]` when the layout existed. */
  readonly #createdDirs: string[] = [];
  readonly #createdFiles = new Set<string>();
  #layoutReady: Promise<void> | undefined;

  constructor(dir: string) {
    if (!dir) throw new InvalidArgumentError('OCI layout path is empty');
    this.dir = dir;
  }

  blobPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, 'blobs', algorithm, hex);
  }

  /** The layout's `index.json`; an empty index if the directory has none yet (when `create`). */
  async readIndex(options: { create?: boolean } = {}): Promise<ImageIndex> {
    let text: string;
    try {
      text = await readFile(join(this.dir, 'index.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (options.create) return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
        throw new NotFoundError(`${this.dir} is not an OCI image layout (no index.json)`);
      }
      throw err;
    }
    let index: ImageIndex;
    try {
      index = JSON.parse(text) as ImageIndex;
    } catch (err) {
      throw new FormatError('index.json', `${this.dir}/index.json is not JSON`, { cause: err });
    }
    if (!Array.isArray(index.manifests)) throw new FormatError('index.json.manifests', 'missing or not an array');
    return index;
  }

  /** The descriptor tagged `tag`, or the only one when `tag` is undefined. */
  async findManifest(tag: string | undefined): Promise<Descriptor> {
    const index = await this.readIndex();
    if (tag === undefined) {
      if (index.manifests.length === 1) return index.manifests[0]!;
      const tags = index.manifests.map((m) => m.annotations?.[refNameAnnotation]).filter(Boolean);
      throw new InvalidArgumentError(`${this.dir} holds ${index.manifests.length} images; name one with oci:${this.dir}:TAG (tags: ${tags.join(', ') || 'none'})`);
    }
    const found = index.manifests.find((m) => m.annotations?.[refNameAnnotation] === tag);
    if (!found) throw new NotFoundError(`tag "${tag}" not found in OCI layout ${this.dir}`);
    return found;
  }

  async hasBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    try {
      const s = await stat(this.blobPath(descriptor.digest));
      return s.isFile() && s.size === descriptor.size;
    } catch {
      return false;
    }
  }

  /** A blob as a stream verified against its digest and size; `signal` ends it with a CancelledError. */
  openBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, onBytes?: (n: number) => void, signal?: AbortSignal): Readable {
    const path = this.blobPath(descriptor.digest);
    const verify = new VerifyStream(descriptor.digest, descriptor.size, `blob ${descriptor.digest} in ${this.dir}`, onBytes);
    const file = createReadStream(path, { highWaterMark: 1 << 20 });
    file.on('error', (err) => verify.destroy((err as NodeJS.ErrnoException).code === 'ENOENT'
      ? new NotFoundError(`blob ${descriptor.digest} missing from OCI layout ${this.dir}`, { cause: err })
      : fileSystemError(err, path, 'reading') as Error));
    if (signal) {
      // A read that does not return (a FIFO, a hung network file system) must not hold the run.
      const onAbort = () => {
        const reason = new CancelledError(`reading blob ${descriptor.digest} from ${this.dir} cancelled`, { cause: signal.reason });
        file.destroy();
        verify.destroy(reason);
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        verify.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return file.pipe(verify);
  }

  /** A small blob (manifest, config) read whole and verified; capped at 4 MiB. */
  async readSmallBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>): Promise<Buffer> {
    if (descriptor.size > maxManifestBytes) throw new InvalidArgumentError(`${descriptor.digest}: ${descriptor.size} bytes is too large to read whole`);
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(descriptor.digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob ${descriptor.digest} missing from OCI layout ${this.dir}`);
      throw err;
    }
    const { algorithm } = parseDigest(descriptor.digest);
    const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
    if (actual !== descriptor.digest) throw new DigestMismatchError(`blob in ${this.dir}`, descriptor.digest, actual);
    return bytes;
  }

  /**
   * Makes the layout's directories one level at a time (Node's recursive mkdir spins forever
   * where the kernel refuses new directories with ENOENT, as under /proc) and its `oci-layout`
   * file, once per instance.
   */
  #ensureLayout(): Promise<void> {
    this.#layoutReady ??= (async () => {
      this.#createdDirs.push(...(await makeDirectories(join(this.dir, 'blobs', 'sha256'))));
      const marker = join(this.dir, 'oci-layout');
      if (await stat(marker).catch(() => undefined)) return;
      await this.#writeSmallFile(marker, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      this.#createdFiles.add(marker);
    })();
    // A failed attempt is not remembered: the next call tries again.
    this.#layoutReady.catch(() => (this.#layoutReady = undefined));
    return this.#layoutReady;
  }

  /** Writes `text` to `file` through a temporary name; a failure names the file and its errno. */
  async #writeSmallFile(file: string, text: string): Promise<void> {
    const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(tmp, text);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw fileSystemError(err, tmp, 'writing');
    }
  }

  /** Writes a blob from a stream: temporary file, digest/size check, rename. */
  async writeBlob(descriptor: Pick<Descriptor, 'digest' | 'size'>, data: Readable | Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#ensureLayout();
    const final = this.blobPath(descriptor.digest);
    this.#createdDirs.push(...(await makeDirectories(join(final, '..'))));
    const tmp = `${final}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      const verify = new VerifyStream(descriptor.digest, descriptor.size, `blob ${descriptor.digest} for ${this.dir}`);
      if (data instanceof Uint8Array) {
        await pipeline(async function* () { yield Buffer.from(data); }, verify, createWriteStream(tmp), { ...(signal && { signal }) });
      } else {
        await pipeline(data, verify, createWriteStream(tmp), { ...(signal && { signal }) });
      }
      const existed = await stat(final).then(() => true, () => false);
      await rename(tmp, final);
      if (!existed) this.#createdFiles.add(final);
    } catch (err) {
      await rm(tmp, { force: true });
      // A write error of a file stream names no path: name the file.
      throw fileSystemError(err, tmp, 'writing');
    }
  }

  /**
   * Removes what this instance created: blobs, the `oci-layout` file and directories, but only
   * when the layout directory itself was made by this instance. In a layout that existed, the
   * complete blobs stay (as in a registry): another run writing to it at the same time may
   * refer to the same blobs.
   */
  async removeCreated(): Promise<void> {
    if (!this.#createdDirs.includes(resolve(this.dir))) return;
    for (const file of this.#createdFiles) await rm(file, { force: true });
    this.#createdFiles.clear();
    await removeCreatedDirectories(this.#createdDirs);
    this.#createdDirs.length = 0;
  }

  /** Records `descriptor` in `index.json` (replacing an entry with the same tag), atomically. */
  async addToIndex(descriptor: Descriptor, tag: string | undefined): Promise<void> {
    await this.#ensureLayout();
    const index = await this.readIndex({ create: true });
    const entry: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (descriptor.platform) entry.platform = descriptor.platform;
    if (tag !== undefined) entry.annotations = { [refNameAnnotation]: tag };
    index.manifests = index.manifests.filter((m) =>
      tag !== undefined ? m.annotations?.[refNameAnnotation] !== tag : !(m.digest === descriptor.digest && !m.annotations?.[refNameAnnotation]),
    );
    index.manifests.push(entry);
    await this.#writeSmallFile(join(this.dir, 'index.json'), JSON.stringify(index));
  }
}

/** An image in an OCI layout directory (`oci:PATH[:TAG]`). */
export class OciLayoutSource implements ImageSource {
  readonly name: string;
  readonly layout: OciLayout;
  readonly #tag: string | undefined;

  constructor(dir: string, tag?: string) {
    this.layout = new OciLayout(dir);
    this.#tag = tag;
    this.name = `oci:${dir}${tag ? `:${tag}` : ''}`;
  }

  async resolve(): Promise<ManifestData> {
    const found = await this.layout.findManifest(this.#tag);
    const bytes = await this.layout.readSmallBlob(found);
    return { descriptor: { mediaType: found.mediaType, digest: found.digest, size: found.size }, bytes };
  }

  async getManifest(descriptor: Descriptor): Promise<ManifestData> {
    const bytes = await this.layout.readSmallBlob(descriptor);
    return { descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size }, bytes };
  }

  fetchBlob(descriptor: Descriptor, options: FetchBlobOptions = {}): Readable {
    return this.layout.openBlob(descriptor, options.onBytes, options.signal);
  }
}

/** An OCI layout directory copy writes to; `index.json` is written last, by the top manifest. */
export class OciLayoutTarget implements ImageTarget {
  readonly name: string;
  readonly tag: string | undefined;
  readonly layout: OciLayout;
  #committed = false;

  constructor(dir: string, tag?: string) {
    this.layout = new OciLayout(dir);
    this.tag = tag;
    this.name = `oci:${dir}${tag ? `:${tag}` : ''}`;
  }

  hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(descriptor);
  }

  async pushBlob(descriptor: Descriptor, data: Readable, options: PushBlobTargetOptions = {}): Promise<void> {
    await this.layout.writeBlob(descriptor, data, options.signal);
  }

  async putManifest(manifest: ManifestData, options: { top: boolean }): Promise<void> {
    await this.layout.writeBlob(manifest.descriptor, manifest.bytes);
    if (options.top) {
      await this.layout.addToIndex(manifest.descriptor, this.tag);
      this.#committed = true;
    }
  }

  /** After a run that did not reach the top manifest: removes the layout it started, if it made it. */
  async close(): Promise<void> {
    if (!this.#committed) await this.layout.removeCreated();
  }
}
