import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NYDUSD_NODE_ENV, NYDUSD_NODE_FLAGS, nydusdCommandFor } from '../src/containerd/snapshotter-config.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../apps/nydusd-ts/bin/nydusd-ts.js');

describe('daemons the snapshotter starts', () => {
  it("get the memory settings of nydusd-ts's shebang", async () => {
    const shebang = (await readFile(bin, 'utf8')).split('\n')[0]!;
    const words = shebang.replace(/^#!\/usr\/bin\/env -S /, '').split(/\s+/);
    const node = words.indexOf('node');
    expect(node).toBeGreaterThan(-1);
    expect(words.slice(0, node)).toEqual([...NYDUSD_NODE_ENV]);
    expect(words.slice(node + 1)).toEqual([...NYDUSD_NODE_FLAGS]);
  });

  it('a JavaScript nydusd-ts runs with them; a native one runs as it is', () => {
    expect(nydusdCommandFor('/opt/x/nydusd-ts.js')).toEqual(['/usr/bin/env', 'MALLOC_ARENA_MAX=2', process.execPath, '--max-semi-space-size=1', '/opt/x/nydusd-ts.js']);
    expect(nydusdCommandFor('/usr/bin/nydusd')).toEqual(['/usr/bin/nydusd']);
  });
});
