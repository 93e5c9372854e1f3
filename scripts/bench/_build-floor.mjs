// The native work of a tar-rafs lz4_block + blake3 build and nothing else, for the build
// benchmark's floor row: the tar read (4 MiB reads), every regular file's content cut into
// 1 MiB chunks, each blake3-hashed, CRC-32C'd and LZ4-compressed (stored raw when it does not
// shrink) into 4 MiB slabs that are sha256-hashed and written to a file, which is fsynced.
// Headers are indexed by their ustar size field only (no PAX, names, tree or bootstrap), so the
// time is a lower bound for any builder on the same libraries. Usage: node _build-floor.mjs TAR OUT
import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'packages/format/package.json'));
const { Blake3Hasher } = require('@napi-rs/blake-hash');
const native = await import(path.join(root, 'packages/native/dist/index.js'));

const [tar, outPath] = process.argv.slice(2);
const fd = openSync(tar, 'r');
const size = fstatSync(fd).size;
const buf = Buffer.allocUnsafe(size);
for (let off = 0; off < size; ) off += readSync(fd, buf, off, Math.min(4 << 20, size - off), off);
closeSync(fd);

const CHUNK = 1 << 20;
const hasher = new Blake3Hasher();
const sha = createHash('sha256');
const out = openSync(outPath, 'w');
const slab = Buffer.allocUnsafe(4 << 20);
const digest = Buffer.alloc(32);
let used = 0;
const flush = () => {
  sha.update(slab.subarray(0, used));
  writeSync(out, slab, 0, used);
  used = 0;
};
for (let off = 0; off + 512 <= size && buf[off] !== 0; ) {
  const fileSize = parseInt(buf.toString('latin1', off + 124, off + 136).replace(/\0/g, ' ').trim() || '0', 8);
  if (buf[off + 156] === 0x30) {
    for (let p = 0; p < fileSize; p += CHUNK) {
      const chunk = buf.subarray(off + 512 + p, off + 512 + Math.min(fileSize, p + CHUNK));
      hasher.reset();
      hasher.update(chunk);
      hasher.digestBuffer().copy(digest);
      native.crc32c(chunk);
      if (used + chunk.length > slab.length) flush();
      const n = chunk.length < 2 ? 0 : native.lz4CompressBlockInto(chunk, slab.subarray(used, used + chunk.length - 1));
      if (n === 0) {
        chunk.copy(slab, used);
        used += chunk.length;
      } else used += n;
    }
  }
  off += 512 + Math.ceil(fileSize / 512) * 512;
}
flush();
fsyncSync(out);
closeSync(out);
process.stdout.write(sha.digest('hex') + '\n');
