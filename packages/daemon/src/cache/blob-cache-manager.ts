import { FormatError, type Logger } from '@nydus-ts/core';
import { BlobCacheFile } from './blob-cache-file.js';

interface Entry {
  file: Promise<BlobCacheFile>;
  refs: number;
  chunkCount: number;
  uncompressedSize: number;
}

/**
 * The open blob caches of a daemon by work dir and blob id: two images sharing a blob share its
 * cache files, in-flight fetches and ready bits. Reference counted; the last release closes.
 */
export class BlobCacheManager {
  private readonly open = new Map<string, Entry>();

  constructor(private readonly logger: Logger) {}

  async acquire(workDir: string, blobId: string, chunkCount: number, uncompressedSize: number): Promise<BlobCacheFile> {
    const key = `${workDir}\0${blobId}`;
    let entry = this.open.get(key);
    if (entry) {
      if (chunkCount > entry.chunkCount || uncompressedSize > entry.uncompressedSize) {
        throw new FormatError(`blob ${blobId}`, `another image opened this blob with ${entry.chunkCount} chunks / ${entry.uncompressedSize} bytes; this one claims ${chunkCount} / ${uncompressedSize}`);
      }
      entry.refs++;
      return entry.file;
    }
    const file = BlobCacheFile.open(workDir, blobId, { chunkCount, uncompressedSize, logger: this.logger.child({ blob: blobId }) });
    entry = { file, refs: 1, chunkCount, uncompressedSize };
    this.open.set(key, entry);
    file.catch(() => this.open.delete(key));
    return file;
  }

  async release(file: BlobCacheFile, workDir: string): Promise<void> {
    const key = `${workDir}\0${file.blobId}`;
    const entry = this.open.get(key);
    if (!entry) return;
    if (--entry.refs > 0) return;
    this.open.delete(key);
    // Let fetches still running for other waiters settle before the files close.
    await Promise.allSettled([...file.inflight.values()]);
    await file.close();
  }

  /** Makes every open cache durable (fdatasync + map write). */
  async flushAll(): Promise<void> {
    await Promise.all([...this.open.values()].map(async (e) => (await e.file).flush()));
  }
}
