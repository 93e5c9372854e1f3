import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { decodeFsName, encodeFsName, hasEscapedBytes, printableFsName } from '../src/index.js';

function prngBytes(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    // Mostly high bytes and UTF-8 lead/continuation bytes, some ASCII.
    out[i] = i % 5 === 0 ? 0x61 + (x % 26) : 0x80 | (x & 0x7f);
  }
  return out;
}

describe('file names as bytes in strings (decodeFsName / encodeFsName)', () => {
  it('decodes valid UTF-8 as Node does, and encodes it back', () => {
    for (const text of ['', 'plain', 'ünïcödé', '日本語', '😀 and spaces', 'has \ufffd itself', 'x\u0000y']) {
      const bytes = Buffer.from(text, 'utf8');
      expect(decodeFsName(bytes)).toBe(text);
      expect(encodeFsName(text)).toEqual(bytes);
      expect(hasEscapedBytes(text)).toBe(false);
    }
  });

  it('round-trips any bytes, and distinct bytes give distinct strings', () => {
    const seen = new Map<string, string>();
    for (let seed = 1; seed <= 3000; seed++) {
      const bytes = prngBytes(seed, 1 + (seed % 40));
      const name = decodeFsName(bytes);
      expect(encodeFsName(name).equals(bytes), bytes.toString('hex')).toBe(true);
      const hex = bytes.toString('hex');
      if (seen.has(name)) expect(seen.get(name)).toBe(hex);
      seen.set(name, hex);
    }
    // Overlong, surrogate and out-of-range sequences, truncated ones, lone continuations.
    for (const hex of ['c0af', 'e080af', 'eda080', 'edbfbf', 'f4908080', 'f8', 'ff', 'fe', 'c3', 'e282', '80', 'bf', '6eff', 'efbfbd', 'efbfbdff']) {
      const bytes = Buffer.from(hex, 'hex');
      expect(encodeFsName(decodeFsName(bytes)).toString('hex')).toBe(hex);
    }
    // A slice of a larger buffer.
    expect(encodeFsName(decodeFsName(Buffer.from('--n\xff--', 'latin1'), 2, 4))).toEqual(Buffer.from([0x6e, 0xff]));
  });

  it('keeps a real U+FFFD apart from an undecodable byte', () => {
    const real = decodeFsName(Buffer.from('6eefbfbd', 'hex'));
    const escaped = decodeFsName(Buffer.from('6eff', 'hex'));
    expect(real).toBe('n\ufffd');
    expect(escaped).not.toBe(real);
    expect(hasEscapedBytes(escaped)).toBe(true);
  });

  it('displays undecodable bytes as \\xNN', () => {
    expect(printableFsName(decodeFsName(Buffer.from('lib\xff/f\xe9', 'latin1')))).toBe('lib\\xff/f\\xe9');
    expect(printableFsName('😀 ok')).toBe('😀 ok');
    // Control characters would break an error message or a check line in two, or drive the terminal.
    expect(printableFsName('a\nb\x1b[31m\x7f\t')).toBe('a\\x0ab\\x1b[31m\\x7f\\x09');
    expect(printableFsName(decodeFsName(Buffer.from('x\n\xff', 'latin1')))).toBe('x\\x0a\\xff');
  });

  it('refuses a string whose lone surrogate stands for no byte', () => {
    for (const bad of ['a\ud800', '\udc00x', 'x\udc7f']) {
      let err: unknown;
      try {
        encodeFsName(bad);
      } catch (e) {
        err = e;
      }
      expect(isNydusError(err, 'INVALID_ARGUMENT'), bad).toBe(true);
    }
  });
});
