import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable, addAbortSignal } from 'node:stream';
import { FormatError, NotFoundError, NydusError } from '@nydus-ts/core';
import type { Digest } from '@nydus-ts/core';
import { VerifyStream } from '@nydus-ts/registry/internal';
import { indexTarFile, normalizeMemberName, type TarIndex, type TarMember } from './tar-index.js';

/** A tar file indexed once; members are read as byte ranges of the file. */
export class ArchiveFile {
  readonly file: string;
  readonly index: TarIndex;

  private constructor(file: string, index: TarIndex) {
    this.file = file;
    this.index = index;
  }

  static async open(file: string, signal?: AbortSignal): Promise<ArchiveFile> {
    return new ArchiveFile(file, await indexTarFile(file, signal));
  }

  /** The member named `name` (normalised), or a NotFoundError naming the archive. */
  member(name: string, what = 'member'): TarMember {
    const m = this.index.get(normalizeMemberName(name));
    if (!m) throw new NotFoundError(`archive ${this.file}: ${what} "${name}" is missing`);
    return m;
  }

  has(name: string): boolean {
    return this.index.has(normalizeMemberName(name));
  }

  /** A small member (index, manifest, config) read whole; refuses members over `maxBytes`. */
  async readSmall(member: TarMember, maxBytes: number): Promise<Buffer> {
    if (member.size > maxBytes) {
      throw new NydusError('RESOURCE_EXHAUSTED', `archive ${this.file}: member "${member.name}" is ${member.size} bytes, more than the ${maxBytes} read whole`);
    }
    const fh = await open(this.file, 'r');
    try {
      const buf = Buffer.alloc(member.size);
      let done = 0;
      while (done < member.size) {
        const { bytesRead } = await fh.read(buf, done, member.size - done, member.offset + done);
        if (bytesRead === 0) throw new FormatError('tar.entry.data', `archive ${this.file}: member "${member.name}" was cut short (file changed?)`, { offset: member.offset + done });
        done += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  /** The member's bytes as a stream (never held whole). */
  stream(member: TarMember, signal?: AbortSignal): Readable {
    const s = member.size === 0 ? Readable.from([]) : createReadStream(this.file, { start: member.offset, end: member.offset + member.size - 1, highWaterMark: 1 << 20 });
    if (signal) addAbortSignal(signal, s);
    return s;
  }

  /** The member's bytes verified against `digest` and its size; the stream errors on a mismatch. */
  verifiedStream(member: TarMember, digest: Digest, what: string, options: { signal?: AbortSignal; onBytes?: (n: number) => void } = {}): Readable {
    const verify = new VerifyStream(digest, member.size, what, options.onBytes);
    const src = this.stream(member);
    src.on('error', (err) => verify.destroy(err));
    verify.on('close', () => src.destroy());
    if (options.signal) addAbortSignal(options.signal, verify);
    return src.pipe(verify);
  }
}
