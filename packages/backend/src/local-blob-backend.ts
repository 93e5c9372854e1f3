import { NotFoundError, FormatError } from '@nydus-ts/core';
import type { BlobBackend } from '@nydus-ts/core';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Reads blob ranges from files named by blob id in a directory (a blob dir, as `image create` fills it). */
export class LocalBlobBackend implements BlobBackend {
  readonly dir: string;
  #handles = new Map<string, Promise<FileHandle>>();

  constructor(dir: string) {
    this.dir = dir;
  }

  pathOf(blobId: string): string {
    if (!/^[0-9a-zA-Z_.-]+$/.test(blobId) || blobId.startsWith('.')) {
      throw new FormatError('blob_id', `blob id "${blobId}" cannot name a file`, { value: blobId });
    }
    return path.join(this.dir, blobId);
  }

  #handle(blobId: string): Promise<FileHandle> {
    let h = this.#handles.get(blobId);
    if (!h) {
      const file = this.pathOf(blobId);
      h = open(file, 'r').catch((err: NodeJS.ErrnoException) => {
        this.#handles.delete(blobId);
        if (err.code === 'ENOENT') throw new NotFoundError(`blob ${blobId} not found in ${this.dir}`, { cause: err });
        throw err;
      });
      this.#handles.set(blobId, h);
    }
    return h;
  }

  async size(blobId: string): Promise<number> {
    return (await (await this.#handle(blobId)).stat()).size;
  }

  async readRange(blobId: string, offset: number, length: number): Promise<Uint8Array> {
    const fh = await this.#handle(blobId);
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(out, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new FormatError(`blob ${blobId}`, `range [${offset}, +${length}) exceeds the blob file`, { offset: offset + done });
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    const handles = [...this.#handles.values()];
    this.#handles.clear();
    await Promise.all(handles.map(async (h) => (await h.catch(() => undefined))?.close()));
  }
}
