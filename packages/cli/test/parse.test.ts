import { describe, expect, it } from 'vitest';
import { parseByteSize, parseChoice, parseDuration, parsePositiveInt } from '../src/index.js';

describe('option parsing', () => {
  it('parses byte sizes with suffixes', () => {
    expect(parseByteSize('0', '--x')).toBe(0);
    expect(parseByteSize('0x100000', '--x')).toBe(1 << 20);
    expect(parseByteSize('512KiB', '--x')).toBe(512 * 1024);
    expect(parseByteSize('4MiB', '--x')).toBe(4 << 20);
    expect(parseByteSize('10MB', '--x')).toBe(10 << 20);
    expect(() => parseByteSize('12 parsecs', '--push-chunk-size')).toThrow(/--push-chunk-size: invalid size/);
  });
  it('parses durations (seconds by default) into whole milliseconds', () => {
    expect(parseDuration('30', '--x')).toBe(30_000);
    expect(parseDuration('1.5', '--x')).toBe(1500);
    expect(parseDuration('500ms', '--x')).toBe(500);
    expect(parseDuration('20s', '--x')).toBe(20_000);
    expect(parseDuration('2m', '--x')).toBe(120_000);
    expect(() => parseDuration('0', '--idle-timeout')).toThrow(/--idle-timeout: duration "0" must be at least 1 ms/);
    expect(() => parseDuration('0.1ms', '--idle-timeout')).toThrow(/at least 1 ms/);
    expect(() => parseDuration('soon', '--connect-timeout')).toThrow(/--connect-timeout: invalid duration "soon"/);
    expect(() => parseDuration('-5s', '--x')).toThrow(/invalid duration/);
  });
  it('rejects bad integers and choices', () => {
    expect(parsePositiveInt('4', '--concurrency')).toBe(4);
    expect(() => parsePositiveInt('0', '--concurrency')).toThrow(/--concurrency/);
    expect(parseChoice('zstd', '--compressor', ['none', 'zstd'] as const)).toBe('zstd');
    expect(() => parseChoice('gzip', '--compressor', ['none', 'zstd'] as const)).toThrow(/not one of none, zstd/);
  });
});
