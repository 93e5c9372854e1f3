import { describe, expect, it } from 'vitest';
import { parseByteSize, parseChoice, parsePositiveInt } from '../src/index.js';

describe('option parsing', () => {
  it('parses byte sizes with suffixes', () => {
    expect(parseByteSize('0', '--x')).toBe(0);
    expect(parseByteSize('0x100000', '--x')).toBe(1 << 20);
    expect(parseByteSize('512KiB', '--x')).toBe(512 * 1024);
    expect(parseByteSize('4MiB', '--x')).toBe(4 << 20);
    expect(parseByteSize('10MB', '--x')).toBe(10 << 20);
    expect(() => parseByteSize('12 parsecs', '--push-chunk-size')).toThrow(/--push-chunk-size: invalid size/);
  });
  it('rejects bad integers and choices', () => {
    expect(parsePositiveInt('4', '--concurrency')).toBe(4);
    expect(() => parsePositiveInt('0', '--concurrency')).toThrow(/--concurrency/);
    expect(parseChoice('zstd', '--compressor', ['none', 'zstd'] as const)).toBe('zstd');
    expect(() => parseChoice('gzip', '--compressor', ['none', 'zstd'] as const)).toThrow(/not one of none, zstd/);
  });
});
