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
import { RegistryProtocolError, redactUrl } from './errors.js';
import { discardBody, readBodyLimited } from './http-body.js';
import { manifestAcceptHeader, sniffManifestMediaType } from './manifest-media-types.js';
import { RegistryTransport } from './registry-transport.js';
import type { RegistryReply, RegistryTransportOptions } from './registry-transport.js';
import { RetryBudget, withRetry } from './retry.js';

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

export interface BudgetOptions {
  /**
   * Tries shared with the rest of an operation (e.g. one blob transfer: its GETs, resumes,
   * upload requests and fresh starts), so that retries never multiply. Default: a budget of
   * the client's `retry` options for this call alone.
   */
  retryBudget?: RetryBudget;
}

export interface FetchOptions extends SignalOptions, BudgetOptions {
  /** Called with the size of every chunk handed on (progress). */
  onBytes?: (n: number) => void;
  /**
   * Bytes the stream buffers ahead of its reader (default 256 KiB). A reader that takes whole
   * buffers (an async iterator does) then gets chunks up to this size instead of socket-sized ones.
   */
  highWaterMark?: number;
}

export interface PushBlobOptions extends SignalOptions, BudgetOptions {
  /** 0 (default): one monolithic PUT; > 0: PATCH chunks of this many bytes, then PUT ?digest=. */
  chunkSize?: number;
}

export interface UploadOptions extends SignalOptions, BudgetOptions {
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

/** `repo:tag` or `repo@sha256:…`, as a reference names it. */
function manifestName(repository: string, reference: string): string {
  return isDigest(reference) ? `${repository}@${reference}` : `${repository}:${reference}`;
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
    const what = `fetching manifest ${manifestName(repository, reference)} from ${this.registry}`;
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
      what: `checking manifest ${manifestName(repository, reference)} in ${this.registry}`,
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
      what: `pushing manifest ${manifestName(repository, reference)} to ${this.registry}`,
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
  async headBlob(repository: string, digest: Digest, options: SignalOptions & BudgetOptions = {}): Promise<number | undefined> {
    checkRepository(repository);
    parseDigest(digest);
    const reply = await this.transport.request({
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [`repository:${repository}:pull`],
      expect: [200, 404],
      what: `checking blob ${digest} in ${this.registry}/${repository}`,
      signal: options.signal,
      ...(options.retryBudget && { retryBudget: options.retryBudget }),
    });
    await discardBody(reply.body);
    if (reply.status === 404) return undefined;
    return Number(one(reply.headers, 'content-length') ?? 0);
  }

  async #openBlob(repository: string, digest: Digest, what: string, offset: number, end: number | undefined, strictRange: boolean, signal: AbortSignal | undefined, budget: RetryBudget): Promise<OpenedBody> {
    const ranged = offset > 0 || end !== undefined;
    const reply = await this.transport.request({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      headers: ranged ? { range: `bytes=${offset}-${end === undefined ? '' : end - 1}` } : {},
      scopes: [`repository:${repository}:pull`],
      pull: true,
      expect: [200, 206],
      what,
      signal,
      retryBudget: budget,
    });
    const url = redactUrl(reply.url);
    if (!ranged) {
      if (reply.status !== 200) {
        await discardBody(reply.body);
        throw new RegistryProtocolError('GET', url, `unexpected ${reply.status} without a Range`, { what });
      }
      return { body: reply.body, skip: 0, url };
    }
    if (reply.status === 206) {
      const cr = one(reply.headers, 'content-range') ?? '';
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      if (!m || Number(m[1]) !== offset || (end !== undefined && Number(m[2]) !== end - 1)) {
        await discardBody(reply.body);
        throw new RegistryProtocolError('GET', url, `Content-Range "${cr}" does not match the requested bytes ${offset}-${end === undefined ? '' : end - 1}`, { what });
      }
      return { body: reply.body, skip: 0, url };
    }
    if (strictRange) {
      await discardBody(reply.body);
      throw new RegistryProtocolError('GET', url, `server ignored Range (status ${reply.status}, expected 206)`, { code: 'UNSUPPORTED', what });
    }
    return { body: reply.body, skip: offset, url }; // resume from a server without Range support
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
    const what = `fetching blob ${descriptor.digest} from ${this.registry}/${repository}`;
    return resumableBody({
      open: (offset, signal, budget) => this.#openBlob(repository, descriptor.digest, what, offset, undefined, false, signal, budget),
      length: descriptor.size,
      digest: descriptor.digest,
      what,
      retry: this.transport.retry,
      ...(options.retryBudget && { budget: options.retryBudget }),
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
    const what = `fetching bytes ${offset}-${end - 1} of blob ${digest} from ${this.registry}/${repository}`;
    return resumableBody({
      open: (at, signal, budget) => this.#openBlob(repository, digest, what, at, end, true, signal, budget),
      start: offset,
      length,
      what,
      retry: this.transport.retry,
      ...(options.retryBudget && { budget: options.retryBudget }),
      signal: options.signal,
      ...(options.onBytes && { onBytes: options.onBytes }),
      ...(options.highWaterMark !== undefined && { highWaterMark: options.highWaterMark }),
    });
  }

  /** POST an upload session; with `mountFrom`, first asks the registry to mount the blob. */
  async #startUpload(repository: string, options: { mount?: Digest; from?: string; signal?: AbortSignal; retryBudget?: RetryBudget; what?: string }): Promise<{ mounted: true } | { mounted: false; location: URL }> {
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
      what: options.mount ? `mounting blob ${options.mount} from ${options.from} into ${this.registry}/${repository}` : (options.what ?? `starting an upload to ${this.registry}/${repository}`),
      signal: options.signal,
      ...(options.retryBudget && { retryBudget: options.retryBudget }),
    });
    await discardBody(reply.body);
    if (reply.status === 201) return { mounted: true };
    return { mounted: false, location: BlobUpload.locationOf(reply, `upload to ${this.registry}/${repository}`) };
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
   * Pushes a blob whose digest and size are known: from a stream, read once with backpressure
   * (one monolithic PUT, or PATCH chunks of `chunkSize`), or from bytes in memory (a config, a
   * bootstrap layer), which are sent again in a fresh upload after a failure. The registry
   * verifies the digest; the blob is committed only if every byte arrived and matched.
   */
  async pushBlob(repository: string, descriptor: Pick<Descriptor, 'digest' | 'size'>, source: Readable | Uint8Array, options: PushBlobOptions = {}): Promise<CommittedBlob> {
    const destroy = (): void => {
      if (!(source instanceof Uint8Array)) source.destroy();
    };
    try {
      checkRepository(repository);
      parseDigest(descriptor.digest);
    } catch (err) {
      destroy();
      throw err;
    }
    const chunkSize = options.chunkSize ?? 0;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 0) {
      destroy();
      throw new InvalidArgumentError(`push chunk size must be a non-negative integer, got ${chunkSize}`);
    }
    const what = `uploading blob ${descriptor.digest} to ${this.registry}/${repository}`;
    if (source instanceof Uint8Array) {
      if (source.byteLength !== descriptor.size) throw new InvalidArgumentError(`${what}: ${source.byteLength} bytes given for a blob of ${descriptor.size}`);
      const bytes = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
      const budget = options.retryBudget ?? new RetryBudget(this.transport.retry);
      return withRetry(async () => {
        const started = await this.#startUpload(repository, { signal: options.signal, retryBudget: budget, what });
        if (started.mounted) throw new RegistryProtocolError('POST', repository, 'registry answered 201 to a plain upload request', { what });
        const reply = await this.transport.request({
          method: 'PUT',
          path: started.location,
          query: { digest: descriptor.digest },
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
          body: bytes,
          scopes: [`repository:${repository}:pull,push`],
          expect: [201, 204],
          what,
          signal: options.signal,
          attempts: 1, // a failed PUT may have spoilt the session: the next try opens a new one
        });
        await discardBody(reply.body);
        return { digest: descriptor.digest, size: descriptor.size };
      }, this.transport.retry, { budget, ...(options.signal && { signal: options.signal }) });
    }
    // Start reading now, so the source's first round trip (the GET of a blob being copied)
    // overlaps the upload POST; it buffers up to its highWaterMark until the upload takes it.
    let sourceError: unknown;
    source.once('error', (err) => (sourceError = err));
    source.read(0);
    let location: URL;
    try {
      const started = await this.#startUpload(repository, { signal: options.signal, what, ...(options.retryBudget && { retryBudget: options.retryBudget }) });
      if (started.mounted) throw new RegistryProtocolError('POST', repository, 'registry answered 201 to a plain upload request', { what });
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
      const upload = new BlobUpload(this.transport, repository, location, { chunkSize, signal: options.signal, ...(options.retryBudget && { retryBudget: options.retryBudget }), what });
      try {
        await pipeline(source, upload);
      } catch (err) {
        await upload.cancel(); // its session's DELETE answered before the push fails
        throw err;
      }
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
        what,
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
    const started = await this.#startUpload(repository, { signal: options.signal, ...(options.retryBudget && { retryBudget: options.retryBudget }) });
    if (started.mounted) throw new RegistryProtocolError('POST', repository, 'registry answered 201 to a plain upload request');
    return new BlobUpload(this.transport, repository, started.location, {
      chunkSize: options.chunkSize ?? 0,
      ...(options.verifyDigest === false && { verifyDigest: false }),
      ...(options.retryBudget && { retryBudget: options.retryBudget }),
      signal: options.signal,
    });
  }
}

