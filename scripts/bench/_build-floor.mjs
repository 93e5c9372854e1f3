// The native work of a tar-rafs lz4_block + blake3 build and nothing else, for the build
// benchmark's floor row: the tar read in 4 MiB reads into one reused window, every regular
// file's content cut into 1 MiB chunks, each blake3-hashed, CRC-32C'd and LZ4-compressed (stored
// raw when it does not shrink) into a 4 MiB slab that is sha256-hashed and written to a file,
// which is fsynced. Headers are read for their size and type only (no PAX, names, tree, dedup or
// bootstrap), so the time is a lower bound for any builder on the same libraries.
// Usage: node _build-floor.mjs TAR OUT (prints the blob's sha256).
import { closeSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(path.join(root, 'packages/format/package.json'));
const { Blake3Hasher } = require('@napi-rs/blake-hash');
const native = await import(path.join(root, 'packages/native/dist/index.js'));

const [tar, outPath] = process.argv.slice(2);
const READ = 4 << 20;
const CHUNK = 1 << 20;
const fd = openSync(tar, 'r');
const win = Buffer.allocUnsafe(2 * READ);
let start = 0;
let end = 0;
let position = 0;
let eof = false;
/** At least `n` (≤ READ) unread bytes in win[start, end), unless the file ends first. */
const ensure = (n) => {
  if (end - start >= n) return end - start;
  win.copy(win, 0, start, end);
  end -= start;
  start = 0;
  while (!eof && end < n) {
    const got = readSync(fd, win, end, Math.min(READ, win.length - end), position);
    if (got === 0) eof = true;
    position += got;
    end += got;
  }
  return end;
};

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
const skip = (n) => {
  while (n > 0) {
    const take = Math.min(n, ensure(Math.min(n, READ)));
    if (take === 0) throw new Error('truncated tar');
    start += take;
    n -= take;
  }
};
for (;;) {
  if (ensure(512) < 512 || win[start] === 0) break;
  const size = parseInt(win.toString('latin1', start + 124, start + 136).replace(/\0/g, ' ').trim() || '0', 8);
  const type = win[start + 156];
  start += 512;
  const pad = (512 - (size % 512)) % 512;
  if (type !== 0x30) {
    skip(size + pad);
    continue;
  }
  for (let p = 0; p < size; p += CHUNK) {
    const len = Math.min(CHUNK, size - p);
    if (ensure(len) < len) throw new Error('truncated tar');
    const chunk = win.subarray(start, start + len);
    hasher.reset();
    hasher.update(chunk);
    hasher.digestBuffer().copy(digest);
    native.crc32c(chunk);
    if (used + len > slab.length) flush();
    const n = len < 2 ? 0 : native.lz4CompressBlockInto(chunk, slab.subarray(used, used + len - 1));
    if (n === 0) {
      chunk.copy(slab, used);
      used += len;
    } else used += n;
    start += len;
  }
  skip(pad);
}
closeSync(fd);
flush();
fsyncSync(out);
closeSync(out);
process.stdout.write(sha.digest('hex') + '\n');
