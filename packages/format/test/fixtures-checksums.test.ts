import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixturesDir } from './fixtures.js';

// The reference tools' fixtures live in the repository (testdata/nydus-upstream), so a clone
// without ../shared beside it runs every test. This keeps the copy honest.
describe('reference fixtures copy', () => {
  const sums = readFileSync(fixturesDir + 'SHA256SUMS', 'utf8')
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^([0-9a-f]{64}) {2}(\S+)$/.exec(line);
      if (!m) throw new Error(`bad SHA256SUMS line: ${line}`);
      return { digest: m[1]!, name: m[2]! };
    });

  it('lists every fixture file, README aside', () => {
    const files = readdirSync(fixturesDir).filter((f) => f !== 'SHA256SUMS' && f !== 'README.md').sort();
    expect(sums.map((s) => s.name).sort()).toEqual(files);
    expect(files.length).toBe(10);
  });

  it.each(sums)('$name matches its sha256', ({ digest, name }) => {
    expect(createHash('sha256').update(readFileSync(fixturesDir + name)).digest('hex')).toBe(digest);
  });
});
