import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileSystemError } from '@nydus-ts/core';

/**
 * A file written under a temporary name in its final directory and renamed into place only on
 * commit, so a failed or interrupted write never leaves a half-written file under the real name.
 * Small writes are coalesced into `bufferSize` pieces, large ones written as they are; each
 * `write` resolves when the data is buffered or written (the caller's await is the backpressure),
 * after which the caller may reuse its bytes. A failed system call is a FileSystemError naming
 * the file and the errno (ENOSPC while writing, EISDIR when renaming, ...).
 */
export class AtomicFileWriter {
  readonly tempPath: string;
  #handle: FileHandle | undefined;
  #buffer: Buffer;
  #used = 0;
  #size = 0;
  #done = false;
  #syncing: Promise<void> | undefined;
  /** `bytes` passed to `write` are written or copied when it resolves: callers may reuse them. */
  readonly releasesOnResolve = true;

  private constructor(tempPath: string, handle: FileHandle, bufferSize: number) {
    this.tempPath = tempPath;
    this.#handle = handle;
    this.#buffer = Buffer.allocUnsafe(bufferSize);
  }

  static async create(dir: string, options: { bufferSize?: number; prefix?: string } = {}): Promise<AtomicFileWriter> {
    const tempPath = path.join(dir, `.${options.prefix ?? 'tmp'}-${process.pid}-${randomBytes(6).toString('hex')}`);
    const handle = await open(tempPath, 'wx', 0o644).catch((err: unknown) => {
      throw fileSystemError(err, tempPath, 'creating');
    });
    return new AtomicFileWriter(tempPath, handle, options.bufferSize ?? 4 << 20);
  }

  get size(): number {
    return this.#size;
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.#syncing = undefined; // written after end(): commit syncs again
    this.#size += bytes.length;
    // Large pieces go to the file as they are, without a copy into the buffer.
    if (bytes.length >= this.#buffer.length / 4) {
      await this.#flush();
      await this.#writeAll(bytes);
      return;
    }
    if (this.#used + bytes.length > this.#buffer.length) await this.#flush();
    this.#buffer.set(bytes, this.#used);
    this.#used += bytes.length;
  }

  async #flush(): Promise<void> {
    if (this.#used === 0) return;
    const n = this.#used;
    this.#used = 0;
    await this.#writeAll(this.#buffer.subarray(0, n));
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let off = 0;
    try {
      while (off < bytes.length) {
        const { bytesWritten } = await this.#handle!.write(bytes, off, bytes.length - off);
        off += bytesWritten;
      }
    } catch (err) {
      throw fileSystemError(err, this.tempPath, 'writing');
    }
  }

  async #sync(): Promise<void> {
    await this.#handle!.sync().catch((err: unknown) => {
      throw fileSystemError(err, this.tempPath, 'writing');
    });
  }

  /**
   * No more writes: flushes the buffer and starts the fsync in the background (commit waits for
   * it), so that the disk works while the caller goes on.
   */
  async end(): Promise<void> {
    await this.#flush();
    if (this.#syncing === undefined) {
      const syncing = this.#sync();
      syncing.catch(() => undefined); // reported by commit()
      this.#syncing = syncing;
    }
  }

  /**
   * Flushes, fsyncs and renames the file to `finalPath` (replacing what is there). When any of
   * it fails, the temporary file is removed before the error is thrown.
   */
  async commit(finalPath: string): Promise<void> {
    try {
      await this.#flush();
      await (this.#syncing ?? this.#sync());
      await this.#handle!.close();
      this.#handle = undefined;
      await rename(this.tempPath, finalPath).catch((err: unknown) => {
        throw fileSystemError(err, finalPath, 'writing');
      });
      this.#done = true;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Removes the temporary file; safe to call after commit (then it does nothing). */
  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.#syncing?.catch(() => {});
    await this.#handle?.close().catch(() => {});
    this.#handle = undefined;
    await rm(this.tempPath, { force: true });
  }
}

/** Writes `bytes` to `finalPath` through a temporary file in the same directory. */
export async function writeFileAtomic(finalPath: string, bytes: Uint8Array): Promise<void> {
  const w = await AtomicFileWriter.create(path.dirname(finalPath), { prefix: path.basename(finalPath) });
  try {
    await w.write(bytes);
    await w.commit(finalPath);
  } catch (err) {
    await w.abort();
    throw err;
  }
}
