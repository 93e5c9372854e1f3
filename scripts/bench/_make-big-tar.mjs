// Writes a synthetic layer tar of `totalBytes` with `entries` entries: many small files plus a few
// large ones of half-random, half-repetitive data. Used by build.mjs for the memory bound.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

function header(name, size, type = '0') {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('14000000000\0', 136);
  h.fill(0x20, 148, 156);
  h.write(type, 156);
  h.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

export async function makeBigTar(file, { totalBytes, entries, bigFiles = 10 }) {
  const out = createWriteStream(file, { highWaterMark: 4 << 20 });
  const write = async (b) => {
    if (!out.write(b)) await once(out, 'drain');
  };
  const dirs = 100;
  for (let d = 0; d < dirs; d++) await write(header(`d${d}/`, 0, '5'));
  const small = entries - dirs - bigFiles;
  let written = 0;
  for (let i = 0; i < small; i++) {
    const size = 512 + (i % 16) * 256;
    await write(header(`d${i % dirs}/f${i}`, size));
    const body = Buffer.alloc(Math.ceil(size / 512) * 512);
    createHash('sha256').update(String(i)).digest().copy(body);
    await write(body);
    written += size;
  }
  const text = Buffer.alloc(512 << 10, 'nydus-ts synthetic layer data; ');
  const bigSize = Math.floor((totalBytes - written) / bigFiles / (1 << 20)) * (1 << 20);
  for (let b = 0; b < bigFiles; b++) {
    await write(header(`big/file${b}`, bigSize));
    for (let off = 0; off < bigSize; off += 1 << 20) {
      await write(randomBytes(512 << 10));
      await write(text);
    }
  }
  await write(Buffer.alloc(1024));
  out.end();
  await once(out, 'finish');
  return { entries: dirs + small + bigFiles + 1, bytes: written + bigSize * bigFiles };
}
