import { describe, expect, it } from 'vitest';
import { FormatError, InvalidArgumentError, NydusError, exitCodeFor, isNydusError, parseDigest } from '../src/index.js';

describe('errors', () => {
  it('carries a stable code and is recognised by brand', () => {
    const e = new FormatError('superblock.s_magic', 'bad magic', { offset: 1024, value: 1 });
    expect(e).toBeInstanceOf(NydusError);
    expect(e.code).toBe('INVALID_FORMAT');
    expect(isNydusError(e, 'INVALID_FORMAT')).toBe(true);
    expect(isNydusError(e, 'NOT_FOUND')).toBe(false);
    expect(isNydusError(new Error('x'))).toBe(false);
    expect(e.message).toBe('superblock.s_magic at offset 1024: bad magic');
    expect(exitCodeFor(new InvalidArgumentError('x'))).toBe(2);
    expect(exitCodeFor(new Error('x'))).toBe(1);
  });

  it('parses digests strictly', () => {
    expect(parseDigest('sha256:' + 'a'.repeat(64)).hex).toBe('a'.repeat(64));
    expect(() => parseDigest('sha256:abc')).toThrow(/invalid digest/);
  });
});
