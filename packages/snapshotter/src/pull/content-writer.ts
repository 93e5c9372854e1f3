/**
 * Writes one blob into containerd's content store over `Content.Write` (a bidirectional stream
 * with one response per request, content/proxy/content_writer.go): STAT, WRITEs with increasing
 * offsets, COMMIT with the expected digest and size (and labels). ALREADY_EXISTS anywhere means
 * containerd has the blob: success.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Readable } from 'node:stream';
import { NydusError, isNydusError } from '@nydus-ts/core';
import { callMetadata, unary } from '../grpc-client.js';
import type { CallContext } from '../grpc-client.js';
import { fromServiceError } from '../grpc-errors.js';

interface WriteRequest {
  action: 'STAT' | 'WRITE' | 'COMMIT';
  ref: string;
  total?: number;
  expected?: string;
  offset?: number;
  data?: Buffer;
  labels?: Record<string, string>;
}

interface WriteResponse {
  action: string;
  offset: number;
  total: number;
  digest: string;
}

/** A request/response conversation over one Write stream. */
class WriteSession {
  readonly #call: grpc.ClientDuplexStream<WriteRequest, WriteResponse>;
  readonly #waiting: Array<{ resolve: (r: WriteResponse) => void; reject: (e: Error) => void }> = [];
  #error: Error | undefined;

  constructor(client: grpc.Client, ctx: CallContext) {
    const write = (client as unknown as { Write(md: grpc.Metadata): grpc.ClientDuplexStream<WriteRequest, WriteResponse> }).Write;
    this.#call = write.call(client, callMetadata(ctx));
    this.#call.on('data', (r: WriteResponse) => this.#waiting.shift()?.resolve(r));
    this.#call.on('error', (err) => {
      this.#error = fromServiceError(err, 'Content.Write');
      for (const w of this.#waiting.splice(0)) w.reject(this.#error);
    });
    this.#call.on('end', () => {
      const err = this.#error ?? new NydusError('UNAVAILABLE', 'Content.Write: stream ended early');
      for (const w of this.#waiting.splice(0)) w.reject(err);
    });
  }

  send(req: WriteRequest): Promise<WriteResponse> {
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#call.write(req);
    });
  }

  end(): void {
    this.#call.end();
  }

  cancel(): void {
    this.#call.cancel();
  }
}

export interface WriteContentOptions {
  /** Ingest reference (containerd's `layer-sha256:…` style keeps concurrent writers apart). */
  ref: string;
  digest: string;
  size: number;
  labels?: Record<string, string>;
  /** Bytes per WRITE message (default 1 MiB, below gRPC's 16 MiB limit). */
  chunkSize?: number;
}

/**
 * Streams `open()`'s bytes into the content store. `open` is called only if containerd does
 * not have the blob yet. Returns the number of bytes sent (0 when it already existed).
 */
export async function writeContent(client: grpc.Client, options: WriteContentOptions, open: () => Readable | Buffer, ctx: CallContext): Promise<number> {
  const chunkSize = options.chunkSize ?? 1 << 20;
  const base = { ref: options.ref, total: options.size, expected: options.digest };
  for (let attempt = 0; ; attempt++) {
    const session = new WriteSession(client, ctx);
    try {
      const stat = await session.send({ action: 'STAT', ...base });
      if (Number(stat.offset) === options.size && options.size > 0) {
        // containerd holds the bytes already (another namespace wrote them): commit to link them here.
        await session.send({ action: 'COMMIT', ...base, offset: options.size, labels: options.labels ?? {} });
        session.end();
        return 0;
      }
      if (Number(stat.offset) > 0) {
        // A partial ingest of an earlier attempt: start over rather than resume mid-stream.
        session.cancel();
        if (attempt > 0) throw new NydusError('UNAVAILABLE', `Content.Write ${options.ref}: partial ingest could not be reset`);
        await unary(client, 'Abort', { ref: options.ref }, ctx).catch(() => undefined);
        continue;
      }
      let offset = 0;
      const source = open();
      const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(source) ? [source] : (source as AsyncIterable<Buffer>);
      for await (const piece of chunks) {
        for (let at = 0; at < piece.length; at += chunkSize) {
          const data = piece.subarray(at, Math.min(piece.length, at + chunkSize));
          await session.send({ action: 'WRITE', ...base, offset, data });
          offset += data.length;
        }
      }
      if (offset !== options.size) throw new NydusError('DATA_LOSS', `blob ${options.digest}: got ${offset} bytes, expected ${options.size}`);
      await session.send({ action: 'COMMIT', ...base, offset, labels: options.labels ?? {} });
      session.end();
      return offset;
    } catch (err) {
      session.cancel();
      if (isNydusError(err, 'ALREADY_EXISTS')) return 0;
      throw err;
    }
  }
}
