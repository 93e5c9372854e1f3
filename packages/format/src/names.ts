import { isUtf8 } from 'node:buffer';
import { InvalidArgumentError } from '@nydus-ts/core';

/**
 * File names and symlink targets are bytes, not text: Linux, tar and EROFS allow any bytes but
 * '/' and NUL, valid UTF-8 or not. Paths travel through this project as JS strings, losslessly:
 * valid UTF-8 decodes as usual, and each byte that is not part of a valid UTF-8 sequence
 * becomes one lone low surrogate U+DC80–U+DCFF (the byte plus 0xDC00), which no UTF-8 text
 * decodes to (the `surrogateescape` convention of Python's os.fsdecode). `encodeFsName`
 * turns such a string back into exactly the bytes it came from. Code that needs the bytes
 * (a filesystem call, a tar header, a dirent) must use it, never `Buffer.from(name)`, which
 * would write U+FFFD for each escaped byte.
 */

const REPLACEMENT = '\ufffd';
const ESCAPE_BASE = 0xdc00;
const ANY_SURROGATE = /[\ud800-\udfff]/;
const ESCAPED_BYTE = /(?<![\ud800-\udbff])[\udc80-\udcff]/;
const ESCAPED_BYTES = /(?<![\ud800-\udbff])[\udc80-\udcff]/g;

/** The name held in `bytes[start, end)`, decoded losslessly (see above). */
export function decodeFsName(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buffer.toString('utf8', start, end);
  // A decoder's U+FFFD marks an invalid sequence, unless the name really holds U+FFFD.
  if (!text.includes(REPLACEMENT) || isUtf8(buffer.subarray(start, end))) return text;
  return decodeEscaping(buffer, start, end);
}

/** The bytes of a name decoded by `decodeFsName` (or any string without lone surrogates). */
export function encodeFsName(name: string): Buffer {
  if (!ANY_SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < name.length) {
      const d = name.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        for (const b of Buffer.from(name.slice(i, i + 2), 'utf8')) out.push(b);
        i++;
        continue;
      }
    }
    if (c >= 0xdc80 && c <= 0xdcff) {
      out.push(c - ESCAPE_BASE);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      throw new InvalidArgumentError(`name ${JSON.stringify(name)} holds a lone surrogate U+${c.toString(16).toUpperCase()} that stands for no byte`);
    }
    for (const b of Buffer.from(name[i]!, 'utf8')) out.push(b);
  }
  return Buffer.from(out);
}

/** True if the name came from bytes that are not valid UTF-8. */
export function hasEscapedBytes(name: string): boolean {
  return ANY_SURROGATE.test(name) && ESCAPED_BYTE.test(name);
}

/**
 * A name for display: each byte that is not valid UTF-8, and each control character (a name in
 * an error message or a check line must not break the line or drive the terminal), as `\xNN`;
 * everything else as is.
 */
export function printableFsName(name: string): string {
  const controlsEscaped = CONTROL_CHARS.test(name) ? name.replace(CONTROL_CHARS_ALL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : name;
  if (!ANY_SURROGATE.test(controlsEscaped)) return controlsEscaped;
  return controlsEscaped.replace(ESCAPED_BYTES, (c) => `\\x${(c.charCodeAt(0) - ESCAPE_BASE).toString(16).padStart(2, '0')}`);
}

const CONTROL_CHARS = /[\x00-\x1f\x7f]/;
const CONTROL_CHARS_ALL = /[\x00-\x1f\x7f]/g;

/** Strict UTF-8 (Unicode table 3-7): valid sequences as text, every other byte escaped. */
function decodeEscaping(b: Buffer, start: number, end: number): string {
  let out = '';
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    const n = sequenceLength(b, i, end);
    if (n === 0) {
      out += String.fromCharCode(ESCAPE_BASE + c);
      i++;
      continue;
    }
    out += b.toString('utf8', i, i + n);
    i += n;
  }
  return out;
}

/** Length of the valid UTF-8 sequence at `i` (2 to 4), or 0. */
function sequenceLength(b: Buffer, i: number, end: number): number {
  const c = b[i]!;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < end && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}
