import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, InvalidArgumentError, NydusError, isDigest, parseDigest } from '@nydus-ts/core';
import type { Descriptor, Digest } from '@nydus-ts/core';
import { BlobUpload } from './blob-upload.js';
import type { Fetcher, ManifestStore, Pusher } from './capabilities.js';
import type { CommittedBlob } from './blob-upload.js';
import { resumableBody } from './blob-reader.js';
import type { OpenedBody } from './blob-reader.js';
import { RegistryProtocolError, RegistryResponseError, redactUrl } from './errors.js';
import { discardBody, readBodyLimited } from './http-body.js';
import { manifestAcceptHeader, sniffManifestMediaType } from './manifest-media-types.js';
import { RegistryTransport } from './registry-transport.js';
import type { RegistryReply, RegistryTransportOptions } from './registry-transport.js';

export type RegistryClientOptions = RegistryTransportOptions & {
  /** Largest manifest accepted (default 4 MiB). */
  maxManifestBytes?: number;
};

/** A manifest or index with the exact bytes its digest was computed on. */
export interface ManifestData {
  descriptor: Descriptor;
  bytes: Buffer;
}

export interface SignalOptions {
  signal?: AbortSignal;
}

export interface FetchOptions extends SignalOptions {
  /** Called with the size of every chunk handed on (progress). */
  onBytes?: (n: number) => void;
  /**
   * Bytes the stream buffers ahead of its reader (default 256 KiB). A reader that takes whole
   * buffers (an async iterator does) then gets chunks up to this size instead of socket-sized ones.
   */
  highWaterMark?: number;
}

export interface PushBlobOptions extends SignalOptions {
  /** 0 (default): one monolithic PUT; > 0: PATCH chunks of this many bytes, then PUT ?digest=. */
  chunkSize?: number;
}

export interface UploadOptions extends SignalOptions {
  /** 0 (default): one streaming PATCH as bytes arrive; > 0: buffered PATCH chunks of this size. */
  chunkSize?: number;
  /**
   * false: the upload does not hash the bytes itself (for a caller that hashes what it writes);
   * `commit()` must then be given the digest, which the registry checks. Default true.
   */
  verifyDigest?: boolean;
}

function one(headers: RegistryReply['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function checkRepository(repository: string): void {
  if (!/^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/.test(repository)) {
    throw new InvalidArgumentError(`invalid repository name "${repository}"`);
  }
}

function checkManifestReference(reference: string): void {
  if (!isDigest(reference) && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(reference)) {
    throw new InvalidArgumentError(`"${reference}" is neither a tag nor a digest`);
  }
}

function sha256(bytes: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * A streaming client for one OCI registry: manifests (get/head/put, digest computed on the exact
 * bytes), blobs (HEAD, verified resumable GET, ranged GET, monolithic or chunked push,
 * cross-repository mount) and uploads of unknown size. Blob bytes are never buffered whole.
 */
export class RegistryClient implements Fetcher, Pusher, ManifestStore {
  readonly transport: RegistryTransport;
  readonly registry: string;
  readonly #maxManifestBytes: number;

  constructor(options: RegistryClientOptions) {
    this.transport = new RegistryTransport(options);
    this.registry = options.registry;
    this.#maxManifestBytes = options.maxManifestBytes ?? 4 << 20;
  }

  /** Closes keep-alive connections. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** Warms up the registry: see {@link RegistryTransport.ping}. */
  ping(options: SignalOptions = {}): Promise<void> {
    return this.transport.ping(options.signal);
  }

  // ---------------------------------------------------------------- manifests

  /** Fetches a manifest or index by tag or digest; a digest reference is verified. */
  async getManifest(repository: string, reference: string, options: SignalOptions = {}): Promise<ManifestData> {
    checkRepository(repository);
    checkManifestReference(reference);
    const what = `manifest ${repository}:${reference}`;
    const reply = await this.transport.request({
      method: 'GET',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { accept: manifestAcceptHeader },
      scopes: [`repository:${repository}:pull`],
      pull: true,
      expect: [200],
      what,
      signal: options.signal,
    });
    const bytes = await readBodyLimited(reply.body, this.#maxManifestBytes, () =>
      new NydusError('RESOURCE_EXHAUSTED', `${what} is larger than ${this.#maxManifestBytes} bytes`),
    );
    const digest = isDigest(reference) ? reference : sha256(bytes);
    if (isDigest(reference)) {
      const { algorithm } = parseDigest(reference);
      const actual = `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
      if (actual !== reference) throw new DigestMismatchError(what, reference, actual);
    } else {
      const claimed = one(reply.headers, 'docker-content-digest');
      if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
        throw new DigestMismatchError(`${what} (Docker-Content-Digest)`, claimed, digest);
      }
    }
    const contentType = one(reply.headers, 'content-type')?.split(';')[0]?.trim();
    const mediaType = contentType && contentType !== 'application/json' && contentType !== 'text/plain'
      ? contentType
      : (sniffManifestMediaType(bytes) ?? contentType ?? 'application/octet-stream');
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
  }

  /** HEAD of a manifest: its descriptor, or undefined if the registry does not have it. */
  async headManifest(repository: string, reference: string, options: SignalOptions = {}): Promise<Descriptor | undefined> {
    checkRepository(repository);
    checkManifestReference(reference);
    const reply = await this.transport.request({
      method: 'HEAD',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { accept: manifestAcceptHeader },
      scopes: [`repository:${repository}:pull`],
      pull: true,
      expect: [200, 404],
      what: `manifest ${repository}:${reference}`,
      signal: options.signal,
    });
    await discardBody(reply.body);
    if (reply.status === 404) return undefined;
    const digest = one(reply.headers, 'docker-content-digest') ?? (isDigest(reference) ? reference : undefined);
    if (!digest || !isDigest(digest)) {
      throw new RegistryProtocolError('HEAD', redactUrl(reply.url), 'no Docker-Content-Digest header');
    }
    return {
      mediaType: one(reply.headers, 'content-type')?.split(';')[0]?.trim() ?? 'application/octet-stream',
      digest,
      size: Number(one(reply.headers, 'content-length') ?? 0),
    };
  }

  /** Uploads manifest bytes unchanged under a tag or their digest; returns the digest. */
  async putManifest(repository: string, reference: string, bytes: Uint8Array, mediaType: string, options: SignalOptions = {}): Promise<Digest> {
    checkRepository(repository);
    checkManifestReference(reference);
    const digest = sha256(bytes);
    if (isDigest(reference) && reference !== digest) {
      throw new InvalidArgumentError(`manifest bytes have digest ${digest}, not the reference ${reference}`);
    }
    const reply = await this.transport.request({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType, 'content-length': String(bytes.length) },
      body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      scopes: [`repository:${repository}:pull,push`],
      expect: [200, 201, 202, 204],
      what: `manifest ${repository}:${reference}`,
      signal: options.signal,
    });
    await discardBody(reply.body);
    const claimed = one(reply.headers, 'docker-content-digest');
    if (claimed && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new DigestMismatchError(`manifest ${repository}:${reference} as stored by the registry`, digest, claimed);
    }
    return digest;
  }

  // ---------------------------------------------------------------- blobs

  /** HEAD of a blob: its size, or undefined if the repository does not have it. */
  async headBlob(repository: string, digest: Digest, options: SignalOptions = {}): Promise<number | undefined> {
    checkRepository(repository);
    parseDigest(digest);
    const reply = await this.transport.request({
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [`repository:${repository}:pull`],
      expect: [200, 404],
      what: `blob ${digest} in ${repository}`,
      signal: options.signal,
    });
    await discardBody(reply.body);
    if (reply.status === 404) return undefined;
    return Number(one(reply.headers, 'content-length') ?? 0);
  }

  async #openBlob(repository: string, digest: Digest, offset: number, end: number | undefined, strictRange: boolean, signal?: AbortSignal): Promise<OpenedBody> {
    const ranged = offset > 0 || end !== undefined;
    const reply = await this.transport.request({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      headers: ranged ? { range: `bytes=${offset}-${end === undefined ? '' : end - 1}` } : {},
      scopes: [`repository:${repository}:pull`],
      pull: true,
      expect: [200, 206],
      what: `blob ${digest} in ${repository}`,
      signal,
    });
    if (!ranged) {
      if (reply.status !== 200) {
        await discardBody(reply.body);
        throw new RegistryProtocolError('GET', redactUrl(reply.url), `unexpected ${reply.status} without a Range`);
      }
      return { body: reply.body, skip: 0 };
    }
    if (reply.status === 206) {
      const cr = one(reply.headers, 'content-range') ?? '';
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      if (!m || Number(m[1]) !== offset || (end !== undefined && Number(m[2]) !== end - 1)) {
        await discardBody(reply.body);
        throw new RegistryProtocolError('GET', redactUrl(reply.url), `Content-Range "${cr}" does not match the requested bytes ${offset}-${end === undefined ? '' : end - 1}`);
      }
      return { body: reply.body, skip: 0 };
    }
    if (strictRange) {
      await discardBody(reply.body);
      throw new RegistryProtocolError('GET', redactUrl(reply.url), `server ignored Range (status ${reply.status}, expected 206)`, { code: 'UNSUPPORTED' });
    }
    return { body: reply.body, skip: offset }; // resume from a server without Range support
  }

  /**
   * Streams a blob, verifying its digest as it passes (the stream errors with DATA_LOSS on a
   * mismatch before its last bytes) and resuming with `Range` after resets or short bodies.
   */
  fetchBlob(repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>, options: FetchOptions = {}): Readable {
    checkRepository(repository);
    parseDigest(descriptor.digest);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
      throw new InvalidArgumentError(`blob ${descriptor.digest}: invalid size ${descriptor.size}`);
    }
    return resumableBody({
      open: (offset, signal) => this.#openBlob(repository, descriptor.digest, offset, undefined, false, signal),
      length: descriptor.size,
      digest: descriptor.digest,
      what: `blob ${descriptor.digest} in ${this.registry}/${repository}`,
      retry: this.transport.retry,
      signal: options.signal,
      ...(options.onBytes && { onBytes: options.onBytes }),
      ...(options.highWaterMark !== undefined && { highWaterMark: options.highWaterMark }),
    });
  }

  /**
   * Streams `length` bytes of a blob from `offset` (`Range` request; the reply must be 206 with a
   * matching Content-Range). Resumes after resets; not digest-verified (a part cannot be).
   */
  fetchRange(repository: string, digest: Digest, offset: number, length: number, options: FetchOptions = {}): Readable {
    checkRepository(repository);
    parseDigest(digest);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`blob ${digest}: invalid range offset=${offset} length=${length}`);
    }
    const end = offset + length;
    return resumableBody({
      open: (at, signal) => this.#openBlob(repository, digest, at, end, true, signal),
      start: offset,
      length,
      what: `blob ${digest} in ${this.registry}/${repository} bytes ${offset}-${end - 1}`,
      retry: this.transport.retry,
      signal: options.signal,
      ...(options.onBytes && { onBytes: options.onBytes }),
      ...(options.highWaterMark !== undefined && { highWaterMark: options.highWaterMark }),
    });
  }

  /** POST an upload session; with `mountFrom`, first asks the registry to mount the blob. */
  async #startUpload(repository: string, options: { mount?: Digest; from?: string; signal?: AbortSignal }): Promise<{ mounted: true } | { mounted: false; location: URL }> {
    const query: Record<string, string> = {};
    const scopes = [`repository:${repository}:pull,push`];
    if (options.mount && options.from) {
      query.mount = options.mount;
      query.from = options.from;
      scopes.push(`repository:${options.from}:pull`);
    }
    const reply = await this.transport.request({
      method: 'POST',
      path: `/v2/${repository}/blobs/uploads/`,
      query,
      headers: { 'content-length': '0' },
      body: Buffer.alloc(0),
      scopes,
      expect: [201, 202],
      what: options.mount ? `mount of ${options.mount} from ${options.from} into ${repository}` : `upload to ${repository}`,
      signal: options.signal,
    });
    await discardBody(reply.body);
    if (reply.status === 201) return { mounted: true };
    return { mounted: false, location: BlobUpload.locationOf(reply, `upload to ${repository}`) };
  }

  /**
   * Cross-repository mount: true if the registry linked `digest` from `fromRepository` (same
   * registry) without any bytes sent.
   */
  async mountBlob(repository: string, digest: Digest, fromRepository: string, options: SignalOptions = {}): Promise<boolean> {
    checkRepository(repository);
    checkRepository(fromRepository);
    parseDigest(digest);
    const started = await this.#startUpload(repository, { mount: digest, from: fromRepository, signal: options.signal });
    // The registry opened an upload instead; drop it.
    if (!started.mounted) await this.#cancelUpload(repository, started.location);
    return started.mounted;
  }

  /** Drops an upload session (best effort: one attempt, failures ignored). */
  async #cancelUpload(repository: string, location: URL): Promise<void> {
    await this.transport
      .request({ method: 'DELETE', path: location, scopes: [`repository:${repository}:pull,push`], expect: [204, 404], what: 'upload cancel', attempts: 1 })
      .then((r) => discardBody(r.body), () => undefined);
  }

  /**
   * Pushes a blob whose digest and size are known, reading `source` once with backpressure:
   * one monolithic PUT, or PATCH chunks of `chunkSize`. The registry verifies the digest; the
   * blob is committed only if every byte arrived and matched.
   */
  async pushBlob(repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>, source: Readable, options: PushBlobOptions = {}): Promise<CommittedBlob> {
    checkRepository(repository);
    parseDigest(descriptor.digest);
    const chunkSize = options.chunkSize ?? 0;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 0) {
      source.destroy();
      throw new InvalidArgumentError(`push chunk size must be a non-negative integer, got ${chunkSize}`);
    }
    // Start reading now, so the source's first round trip (the GET of a blob being copied)
    // overlaps the upload POST; it buffers up to its highWaterMark until the upload takes it.
    let sourceError: unknown;
    source.once('error', (err) => (sourceError = err));
    source.read(0);
    let location: URL;
    try {
      const started = await this.#startUpload(repository, { signal: options.signal });
      if (started.mounted) throw new RegistryProtocolError('POST', repository, 'registry answered 201 to a plain upload request');
      location = started.location;
    } catch (err) {
      source.destroy();
      throw err;
    }
    if (sourceError !== undefined) {
      // The source failed while the session was being created: nothing to send.
      await this.#cancelUpload(repository, location);
      throw sourceError;
    }
    if (chunkSize > 0) {
      const upload = new BlobUpload(this.transport, repository, location, { chunkSize, signal: options.signal });
      await pipeline(source, upload);
      return upload.commit({ digest: descriptor.digest, size: descriptor.size });
    }
    try {
      const reply = await this.transport.request({
        method: 'PUT',
        path: location,
        query: { digest: descriptor.digest },
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
        body: source,
        scopes: [`repository:${repository}:pull,push`],
        expect: [201, 204],
        what: `blob ${descriptor.digest} to ${repository}`,
        signal: options.signal,
      });
      await discardBody(reply.body);
    } catch (err) {
      source.destroy();
      if (sourceError) throw sourceError;
      throw err;
    }
    if (sourceError) throw sourceError;
    return { digest: descriptor.digest, size: descriptor.size };
  }

  /**
   * Opens an upload for a blob whose digest and size are known only at the end: write to the
   * returned stream, then `commit()` (optionally with the expected digest/size).
   */
  async createUpload(repository: string, options: UploadOptions = {}): Promise<BlobUpload> {
    checkRepository(repository);
    const started = await this.#startUpload(repository, { signal: options.signal });
    if (started.mounted) throw new RegistryProtocolError('POST', repository, 'registry answered 201 to a plain upload request');
    return new BlobUpload(this.transport, repository, started.location, { chunkSize: options.chunkSize ?? 0, ...(options.verifyDigest === false && { verifyDigest: false }), signal: options.signal });
  }
}

