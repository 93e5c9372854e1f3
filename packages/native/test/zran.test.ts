import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { isNydusError } from '@nydus-ts/core';
import { describe, expect, it } from 'vitest';
import { CheckpointingGunzip, inflateFromCheckpoint, inflateFromCheckpointAsync, type GzipCheckpoint } from '../src/index.js';

const fixtures = new URL('../../../testdata/nydus-upstream/', import.meta.url);

/** Mixed text and random runs: blocks of every kind, with back-references across them. */
function sample(size: number, seed = 1): Buffer {
  const parts: Buffer[] = [];
  let n = 0;
  for (let i = 0; n < size; i++) {
    const part = i % 3 === 2 ? randomBytes(2000 + ((i * seed) % 5000)) : Buffer.from(`entry ${i} ${'nydus'.repeat(i % 40)}\n`.repeat(50 + (i % 200)));
    parts.push(part);
    n += part.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** Inflates a whole gzip stream in steps of `outSize` bytes, feeding `inSize` bytes at a time. */
async function inflateAll(gz: Uint8Array, opts: { inSize: number; outSize: number; async: boolean; maxCheckpoints?: number; windows?: boolean }) {
  const g = new CheckpointingGunzip({ maxCheckpointsPerStep: opts.maxCheckpoints ?? 4, what: 'test.gz', ...(opts.windows === false && { windows: false }) });
  const out: Buffer[] = [];
  // windows: false leaves `window` out; those tests never read it
  const checkpoints: Array<GzipCheckpoint & { window: Uint8Array }> = [];
  let pos = 0;
  let input = Buffer.from(gz.subarray(0, Math.min(opts.inSize, gz.length)));
  let fed = input.length;
  let members = 0;
  for (;;) {
    const output = Buffer.alloc(opts.outSize);
    const r = opts.async ? await g.stepAsync(input, output) : g.step(input, output);
    out.push(output.subarray(0, r.produced));
    checkpoints.push(...(r.checkpoints as Array<GzipCheckpoint & { window: Uint8Array }>));
    input = input.subarray(r.consumed);
    pos += r.consumed;
    if (r.status === 'member-end') {
      members++;
      if (pos === gz.length) break;
      g.nextMember();
    }
    if (input.length === 0 && fed < gz.length) {
      input = Buffer.from(gz.subarray(fed, fed + opts.inSize));
      fed += input.length;
    } else if (input.length === 0 && r.status === 'need-input') {
      throw new Error('stream ended inside a member');
    }
  }
  return { data: Buffer.concat(out), checkpoints, members };
}

describe('CheckpointingGunzip', () => {
  it('inflates one member in small and large steps, sync and async, recording resumable checkpoints', async () => {
    const plain = sample(3 << 20);
    const gz = gzipSync(plain);
    for (const opts of [
      { inSize: 1000, outSize: 7000, async: false },
      { inSize: 1 << 20, outSize: 1 << 20, async: true, maxCheckpoints: 64 },
    ]) {
      const { data, checkpoints, members } = await inflateAll(gz, opts);
      expect(data.equals(plain)).toBe(true);
      expect(members).toBe(1);
      // The first checkpoint is right after the 10-byte header, with no window.
      expect(checkpoints[0]).toMatchObject({ inOffset: 10, outOffset: 0, bits: 0, member: 0 });
      expect(checkpoints[0]!.window.length).toBe(0);
      expect(checkpoints.length).toBeGreaterThan(5);
      for (let i = 1; i < checkpoints.length; i++) {
        const c = checkpoints[i]!;
        expect(c.outOffset).toBeGreaterThan(checkpoints[i - 1]!.outOffset);
        expect(Buffer.from(c.window).equals(plain.subarray(Math.max(0, c.outOffset - 32768), c.outOffset))).toBe(true);
        if (c.bits === 0) expect(c.byte).toBe(0);
        else expect(c.byte).toBe(gz[c.inOffset - 1]);
      }
      for (const c of checkpoints) {
        const n = Math.min(200_000, plain.length - c.outOffset);
        const out = Buffer.alloc(n);
        inflateFromCheckpoint(gz.subarray(c.inOffset), c, out);
        expect(out.equals(plain.subarray(c.outOffset, c.outOffset + n))).toBe(true);
      }
    }
  });

  it('continues across members, offsets counting over the whole stream; resuming crosses member ends', async () => {
    const plain = sample(2 << 20, 7);
    const cuts = [0, 300_000, 300_001, 1_500_000, plain.length];
    const gz = Buffer.concat(cuts.slice(1).map((end, i) => gzipSync(plain.subarray(cuts[i], end))));
    const { data, checkpoints, members } = await inflateAll(gz, { inSize: 65536, outSize: 100_000, async: true });
    expect(data.equals(plain)).toBe(true);
    expect(members).toBe(4);
    expect(new Set(checkpoints.map((c) => c.member))).toEqual(new Set([0, 1, 2, 3]));
    // Each member starts with an empty window: back-references never reach into the previous one.
    const starts = checkpoints.filter((c, i) => i > 0 && c.member !== checkpoints[i - 1]!.member);
    expect(starts.map((c) => c.window.length)).toEqual([0, 0, 0]);
    for (const c of checkpoints) {
      const n = Math.min(900_000, plain.length - c.outOffset);
      const out = Buffer.alloc(n);
      await inflateFromCheckpointAsync(gz.subarray(c.inOffset), c, out);
      expect(out.equals(plain.subarray(c.outOffset, c.outOffset + n))).toBe(true);
    }
  });

  it('without windows, reports the window sizes only: the same boundaries, sizes capped at the member output', async () => {
    const plain = sample(2 << 20, 11);
    const cuts = [0, 20_000, 1_200_000, plain.length];
    const gz = Buffer.concat(cuts.slice(1).map((end, i) => gzipSync(plain.subarray(cuts[i], end))));
    for (const async of [false, true]) {
      const full = await inflateAll(gz, { inSize: 65536, outSize: 100_000, async });
      const sizes = await inflateAll(gz, { inSize: 65536, outSize: 100_000, async, windows: false });
      expect(sizes.data.equals(plain)).toBe(true);
      expect(sizes.checkpoints.map(({ window: _, ...c }) => c)).toEqual(full.checkpoints.map(({ window: _, ...c }) => c));
      for (const [i, c] of sizes.checkpoints.entries()) {
        expect(c.window).toBeUndefined();
        expect(c.windowSize).toBe(full.checkpoints[i]!.window!.length);
        const memberStart = cuts[c.member]!;
        expect(c.windowSize).toBe(Math.min(32768, c.outOffset - memberStart));
      }
    }
  });

  it('reads the bgzip fixture (many members) to the same bytes as Node zlib', async () => {
    const gz = readFileSync(new URL('bgzip.tar.gz', fixtures));
    const { data, checkpoints, members } = await inflateAll(gz, { inSize: 1 << 20, outSize: 1 << 20, async: true, maxCheckpoints: 256 });
    expect(data.equals(gunzipSync(gz))).toBe(true);
    expect(members).toBeGreaterThan(1);
    const last = checkpoints[checkpoints.length - 1]!;
    const out = Buffer.alloc(data.length - checkpoints[1]!.outOffset);
    inflateFromCheckpoint(gz.subarray(checkpoints[1]!.inOffset), checkpoints[1]!, out);
    expect(out.equals(data.subarray(checkpoints[1]!.outOffset))).toBe(true);
    expect(last.member).toBe(members - 1);
  });

  it('stops a step when the checkpoint limit is reached', () => {
    const plain = sample(4 << 20, 3);
    const g = new CheckpointingGunzip({ maxCheckpointsPerStep: 2 });
    const r = g.step(gzipSync(plain), Buffer.alloc(plain.length));
    expect(r.status).toBe('checkpoints-full');
    expect(r.checkpoints.length).toBe(2);
    expect(r.produced).toBeLessThan(plain.length);
  });

  it('rejects corrupt input with a FormatError and bad options with an InvalidArgumentError', () => {
    const gz = gzipSync(sample(100_000));
    gz[gz.length >> 1] ^= 0xff;
    gz[(gz.length >> 1) + 1] ^= 0x55;
    const g = new CheckpointingGunzip({ what: 'layer.gz' });
    let err: unknown;
    try {
      g.step(gz, Buffer.alloc(200_000));
    } catch (e) {
      err = e;
    }
    // Either zlib notices the damage (FormatError) or the CRC does at the end.
    if (err === undefined) {
      try {
        for (let i = 0; i < 3; i++) g.step(gz.subarray(0), Buffer.alloc(200_000));
      } catch (e) {
        err = e;
      }
    }
    expect(isNydusError(err) && err.code).toBe('INVALID_FORMAT');
    expect(String(err)).toContain('layer.gz');
    expect(() => new CheckpointingGunzip({ maxCheckpointsPerStep: 0 })).toThrow(/maxCheckpointsPerStep/);
  });
});

describe('inflateFromCheckpoint', () => {
  const plain = sample(1 << 20, 5);
  const gz = gzipSync(plain);
  const first = () => new CheckpointingGunzip().step(gz, Buffer.alloc(plain.length)).checkpoints[3] as GzipCheckpoint & { window: Uint8Array };

  it('fails with a FormatError when the input ends before the output is full', async () => {
    const c = first();
    await expect(inflateFromCheckpointAsync(gz.subarray(c.inOffset, c.inOffset + 200), c, Buffer.alloc(100_000), 'chunk 3')).rejects.toThrow(/chunk 3.*truncated/);
  });

  it('fails with a FormatError on corrupt data and rejects bad checkpoints', () => {
    const c = first();
    const bad = Buffer.from(gz.subarray(c.inOffset));
    for (let i = 100; i < 400; i++) bad[i] = (bad[i]! * 7 + 13) & 0xff;
    expect(() => inflateFromCheckpoint(bad, c, Buffer.alloc(plain.length - c.outOffset))).toThrow(/corrupt gzip data|truncated/);
    expect(() => inflateFromCheckpoint(gz, { bits: 9, byte: 0, window: new Uint8Array(0) }, Buffer.alloc(1))).toThrow(/bits/);
    expect(() => inflateFromCheckpoint(gz, { bits: 0, byte: 0, window: new Uint8Array(40000) }, Buffer.alloc(1))).toThrow(/window/);
  });

  it('with a wrong window the output differs (the window matters)', () => {
    const c = first();
    expect(c.window.length).toBe(32768);
    const out = Buffer.alloc(200_000);
    inflateFromCheckpoint(gz.subarray(c.inOffset), c, out);
    expect(out.equals(plain.subarray(c.outOffset, c.outOffset + out.length))).toBe(true);
    const wrong = Buffer.from(c.window).fill(0x41);
    const out2 = Buffer.alloc(200_000);
    inflateFromCheckpoint(gz.subarray(c.inOffset), { ...c, window: wrong }, out2);
    expect(out2.equals(out)).toBe(false);
  });
});
