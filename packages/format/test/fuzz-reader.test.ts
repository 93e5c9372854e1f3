// Mutation fuzzing of the reader side: every input either parses or fails with a NydusError.
// Deterministic: set NYDUS_FUZZ_SEED to replay another seed; failures print seed, target,
// iteration and the exact mutation.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isNydusError } from '@nydus-ts/core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BootstrapReader,
  RafsFileReader,
  bufferSource,
  extractBlobSection,
  parseBlobMetaFile,
  parseBlobMetaSection,
  parseBlobToc,
  readBlobToc,
  walkBlobTail,
} from '../src/index.js';
import { zranEntry, zranMeta } from './fixtures.js';
import { makeImage, mapBackend, pseudoRandomBytes, type SynthNode } from './reader-helpers.js';
import { makeZranImage } from './zran-helpers.js';

const SEED = Number(process.env.NYDUS_FUZZ_SEED ?? 0x5eed_2026) >>> 0;
const fixtures = fileURLToPath(new URL('../../../testdata/nydus-upstream/', import.meta.url));
const boot22 = readFileSync(fixtures + 'rafs-v6-2.2.boot');
const BE7_ID = 'be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef';
const be7Blob = readFileSync(fixtures + BE7_ID);
const tocBlob = readFileSync(fixtures + '2fa78cad554b75ac91a4a125ed148d0ddeb25efa4aaa8bd80e5dc292690a4dca');
/** Small caps so that mutated sizes cannot make a fuzz case allocate much. */
const SMALL = 16 * 1024 * 1024;
/** A single case taking longer than this counts as a hang. */
const SLOW_MS = 5000;

/** mulberry32 */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Mutation {
  offset: number;
  bytes: number[];
}

interface Target {
  name: string;
  input: Uint8Array;
  /** Ranges [start, end) that a share of mutations is aimed at. */
  hot: Array<[number, number]>;
  iterations: number;
  exercise(bytes: Uint8Array): Promise<void>;
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 4095, 4097, 0x100000, 128, 12];

function mutate(rand: () => number, t: Target): Mutation[] {
  const size = t.input.length;
  const pickOffset = (): number => {
    if (t.hot.length > 0 && rand() < 0.75) {
      const [s, e] = t.hot[Math.floor(rand() * t.hot.length)]!;
      return Math.min(size - 1, s + Math.floor(rand() * Math.max(1, e - s)));
    }
    return Math.floor(rand() * size);
  };
  const muts: Mutation[] = [];
  const count = 1 + Math.floor(rand() * 3);
  for (let m = 0; m < count; m++) {
    const offset = pickOffset();
    const kind = rand();
    let bytes: number[];
    if (kind < 0.35) {
      bytes = [t.input[offset]! ^ (1 << Math.floor(rand() * 8))];
    } else if (kind < 0.55) {
      bytes = [Math.floor(rand() * 256)];
    } else {
      const width = [2, 4, 8][Math.floor(rand() * 3)]!;
      const v = rand() < 0.6 ? INTERESTING[Math.floor(rand() * INTERESTING.length)]! : Math.floor(rand() * 0x1_0000_0000);
      bytes = [];
      for (let i = 0; i < width; i++) bytes.push(i < 4 ? (v >>> (8 * i)) & 0xff : rand() < 0.8 ? 0 : Math.floor(rand() * 256));
    }
    muts.push({ offset, bytes: bytes.slice(0, size - offset) });
  }
  return muts;
}

interface Failure {
  target: string;
  case: string;
  error: string;
}
const failures: Failure[] = [];
let totalCases = 0;
/** Outcomes per target: 'ok' or the error code and structure, to show how deep mutations reach. */
const outcomes = new Map<string, Map<string, number>>();
function tally(target: string, outcome: string): void {
  const m = outcomes.get(target) ?? new Map<string, number>();
  m.set(outcome, (m.get(outcome) ?? 0) + 1);
  outcomes.set(target, m);
}

async function runCase(t: Target, label: string, bytes: Uint8Array, slowMs = SLOW_MS): Promise<void> {
  // The cases only await settled promises: let the event loop run between them, or thousands of
  // them in a row starve this worker's messages to vitest (which time out after 60 s).
  await new Promise((resolve) => setImmediate(resolve));
  totalCases++;
  const started = Date.now();
  try {
    await t.exercise(bytes);
    tally(t.name, 'ok');
  } catch (e) {
    tally(t.name, isNydusError(e) ? `${e.code} ${String((e as { field?: string }).field ?? e.name).replace(/\[[^\]]*\]/g, '[]')}` : 'NON-NYDUS');
    if (!isNydusError(e)) {
      failures.push({ target: t.name, case: label, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  }
  const took = Date.now() - started;
  if (took > slowMs) failures.push({ target: t.name, case: label, error: `took ${took} ms (hang?)` });
}

async function fuzz(t: Target, seed: number): Promise<void> {
  const rand = prng(seed);
  const work = new Uint8Array(t.input);
  for (let i = 0; i < t.iterations; i++) {
    const muts = mutate(rand, t);
    for (const m of muts) work.set(m.bytes, m.offset);
    await runCase(t, `seed=0x${SEED.toString(16)} iteration=${i} mutations=${JSON.stringify(muts)}`, work);
    // Restore (mutations may overlap: restore from the pristine input).
    for (const m of muts) work.set(t.input.subarray(m.offset, m.offset + m.bytes.length), m.offset);
  }
  for (let cut = 512; cut < t.input.length; cut += 512) {
    await runCase(t, `truncated to ${cut} bytes`, t.input.subarray(0, cut));
  }
}

async function exerciseBootstrap(bytes: Uint8Array, blobs?: Record<string, Uint8Array>): Promise<void> {
  const r = await BootstrapReader.open(bytes, { maxSize: SMALL });
  const fr = blobs ? new RafsFileReader(r, mapBackend(blobs)) : undefined;
  for (const nid of r.prefetchNids) r.inode(nid);
  let nodes = 0;
  for (const node of r.walk()) {
    if (++nodes > 1_000_000) throw new Error('walk does not terminate');
    r.xattrs(node.nid);
    switch (node.inode.type) {
      case 'directory':
        r.readdir(node.nid, { includeDots: true });
        break;
      case 'symlink':
        r.readlink(node.nid);
        break;
      case 'file': {
        r.chunks(node.nid);
        r.mapRange(node.nid, Math.floor(node.inode.size / 2), 2 ** 40);
        if (fr) {
          let total = 0;
          for await (const part of fr.stream(node.nid)) total += part.length;
          if (total !== node.inode.size) throw new Error(`streamed ${total} bytes of a ${node.inode.size}-byte file`);
        }
        break;
      }
      default:
        break;
    }
    r.lookup(node.path);
  }
}

// Hot ranges of a bootstrap: superblocks and device slots, blob/prefetch tables, chunk table,
// and every inode with the data right behind it (xattrs, inline dirents, chunk addresses).
function bootstrapHot(bytes: Uint8Array): Array<[number, number]> {
  const hot: Array<[number, number]> = [[1024, 1536]];
  const r = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bt = Number(r.getBigUint64(1160, true));
  hot.push([bt, bt + r.getUint32(1168, true) + Number(r.getUint32(1200, true))]);
  const ct = Number(r.getBigUint64(1176, true));
  hot.push([ct, ct + Number(r.getBigUint64(1184, true))]);
  const meta = r.getUint32(1064, true) * 4096;
  for (let off = meta + 4096; off < ct; off += 32) {
    if (r.getUint32(off, true) !== 0 || r.getUint32(off + 4, true) !== 0) hot.push([off, off + 32]);
  }
  return hot;
}

const inlinedBoot = await (async () => {
  const src = bufferSource(tocBlob);
  return extractBlobSection(src, await readBlobToc(src), 'image.boot');
})();
const inlinedBlobId = (await BootstrapReader.open(inlinedBoot)).blobs[0]!.blobId;

const synth = makeImage(
  {
    kind: 'dir',
    name: '',
    attrs: { xattrs: { 'user.k': 'v' } },
    children: [
      { kind: 'file', name: 'a.txt', data: pseudoRandomBytes(9000, 3, true), attrs: { xattrs: { 'security.capability': 'cap' } } },
      { kind: 'file', name: 'c', data: pseudoRandomBytes(5000, 5), attrs: { compact: true } },
      { kind: 'symlink', name: 'ln', target: 'a.txt' },
      { kind: 'chr', name: 'null', major: 1, minor: 3 },
      { kind: 'sock', name: 's' },
      {
        kind: 'dir',
        name: 'd',
        children: [
          { kind: 'file', name: 'e', data: new Uint8Array(0) },
          { kind: 'dir', name: 'wide', children: Array.from({ length: 120 }, (_, i) => ({ kind: 'fifo', name: `f${String(i).padStart(3, '0')}-${'w'.repeat(20)}` }) as SynthNode) },
        ],
      },
    ],
  },
  { chunkSize: 4096, prefetch: ['/a.txt'] },
);

const be7Boot = await BootstrapReader.open(boot22);
const be7Entry = be7Boot.blobs[0]!.entry;
const be7CiSection = be7Blob.subarray(be7Entry.ciOffset, be7Entry.ciOffset + be7Entry.ciCompressedSize + 4096);

// A targz-ref image of our own: its blob.meta (CI v2 entries, zran contexts, windows) is
// mutated and truncated, then attached and every file read through the original gzip layer.
const ours = await makeZranImage({ fileSizes: [3000, 20_000, 70_000, 9000], chunkSize: 4096 });
const oursMeta = ours.layer.blobMeta!;
const oursCiEnd = ours.layer.chunkCount * 24;

const targets: Target[] = [
  {
    name: 'rafs-v6-2.2.boot',
    input: boot22,
    hot: bootstrapHot(boot22),
    iterations: 7500,
    exercise: (b) => exerciseBootstrap(b, { [BE7_ID]: be7Blob }),
  },
  {
    name: 'ToC blob image.boot (inlined bootstrap)',
    input: inlinedBoot,
    hot: bootstrapHot(inlinedBoot),
    iterations: 6000,
    exercise: (b) => exerciseBootstrap(b, { [inlinedBlobId]: tocBlob }),
  },
  {
    name: 'synthetic bootstrap (all node types, xattrs)',
    input: synth.boot,
    hot: bootstrapHot(synth.boot),
    iterations: 4000,
    exercise: (b) => exerciseBootstrap(b, { [synth.blobId]: synth.blob }),
  },
  {
    name: 'zran blob.meta',
    input: zranMeta,
    hot: [
      [zranMeta.length - 4096, zranMeta.length - 4096 + 64],
      [zranMeta.length - 8, zranMeta.length],
      [0, 163 * 24 + 21 * 40],
    ],
    iterations: 3000,
    exercise: async (b) => {
      try {
        parseBlobMetaFile(b, { maxSize: SMALL });
      } finally {
        parseBlobMetaFile(b, { entry: zranEntry, maxSize: SMALL });
      }
    },
  },
  {
    name: 'targz-ref blob.meta (ours), files read through the original',
    input: oursMeta,
    hot: [
      [0, oursCiEnd],
      [oursCiEnd, oursCiEnd + 200],
      [oursMeta.length - 4096, oursMeta.length - 4096 + 64],
    ],
    iterations: 1500,
    exercise: async (b) => {
      const meta = parseBlobMetaFile(b, { maxSize: SMALL });
      const r = await BootstrapReader.open(ours.merged);
      r.attachBlobMeta(0, meta);
      const files = new RafsFileReader(r, mapBackend({ [ours.digest]: ours.original }));
      for (const n of r.walk()) if (n.inode.type === 'file') await files.read(n.nid, 0, n.inode.size);
    },
  },
  {
    name: 'be7d77 CI section',
    input: be7CiSection,
    hot: [
      [0, 32],
      [32, 32 + 64],
    ],
    iterations: 1500,
    exercise: async (b) => {
      const meta = parseBlobMetaSection(b, { maxSize: SMALL });
      const r = await BootstrapReader.open(boot22);
      r.attachBlobMeta(0, meta);
      for (const n of r.walk()) if (n.inode.type === 'file') r.chunks(n.nid);
    },
  },
  {
    name: 'ToC blob (ToC, tail headers, sections)',
    input: tocBlob,
    hot: [
      [9010, 10034],
      [2829, 2829 + 512],
      [7485, 7485 + 512],
      [7997, 8498 + 512],
      [3341, 3389 + 64],
    ],
    iterations: 3000,
    exercise: async (b) => {
      const src = bufferSource(b);
      const errors: unknown[] = [];
      const attempt = async (fn: () => Promise<unknown> | unknown): Promise<void> => {
        try {
          await fn();
        } catch (e) {
          errors.push(e);
        }
      };
      await attempt(() => parseBlobToc(b.subarray(9010), { offset: 9010 }));
      await attempt(() => walkBlobTail(src));
      await attempt(async () => {
        const toc = await readBlobToc(src);
        for (const e of toc.entries) await attempt(() => extractBlobSection(src, toc, e.name, { maxSize: SMALL }));
      });
      await attempt(async () => {
        const toc = await readBlobToc(src, { offset: 9010, size: 1024 });
        const boot = await extractBlobSection(src, toc, 'image.boot', { maxSize: SMALL });
        await exerciseBootstrap(boot, { [inlinedBlobId]: b });
      });
      const bad = errors.find((e) => !isNydusError(e));
      if (bad !== undefined) throw bad;
      if (errors.length > 0) throw errors[0];
    },
  },
];

describe(`reader fuzz (seed 0x${SEED.toString(16)})`, () => {
  targets.forEach((t, i) => {
    it(`${t.name}: ${t.iterations} mutations + truncations at every 512 bytes fail only with NydusErrors`, async () => {
      // The unmutated input must pass, or the target exercises nothing.
      await t.exercise(new Uint8Array(t.input));
      const before = failures.length;
      await fuzz(t, (SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
      const mine = failures.slice(before);
      expect(mine.slice(0, 5).map((f) => `${f.target} [${f.case}]\n${f.error}`)).toEqual([]);
    });
  });

  it('the harness reports errors that are not NydusErrors, and slow cases', async () => {
    const before = failures.length;
    const casesBefore = totalCases;
    const throwsTypeError: Target = {
      name: 'harness self-check',
      input: new Uint8Array(16),
      hot: [],
      iterations: 1,
      exercise: async () => {
        throw new TypeError('boom');
      },
    };
    await runCase(throwsTypeError, 'self-check', throwsTypeError.input);
    await runCase({ ...throwsTypeError, exercise: async () => new Promise((resolve) => setTimeout(resolve, 60)) }, 'slow self-check', throwsTypeError.input, 20);
    expect(failures.slice(before).map((f) => f.error)).toEqual([expect.stringContaining('TypeError: boom'), expect.stringMatching(/^took \d+ ms/)]);
    failures.length = before;
    totalCases = casesBefore;
  });

  it('ran at least 10,000 mutated or truncated inputs', () => {
    expect(totalCases).toBeGreaterThanOrEqual(10_000);
  });

  it('rejects a huge i_size without allocating for it', async () => {
    const b = Buffer.from(boot22);
    const r = await BootstrapReader.open(b);
    const lib = r.lookup('/lib.rs')!;
    const inodeOff = r.superblock.metaBlkaddr * 4096 + lib * 32;
    b.writeBigUInt64LE(1n << 40n, inodeOff + 8);
    const r2 = await BootstrapReader.open(b);
    const before = process.memoryUsage().arrayBuffers;
    expect(() => r2.chunks(lib)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    expect(() => r2.mapRange(lib, 0, 2 ** 40)).toThrow(expect.objectContaining({ code: 'INVALID_FORMAT' }));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });
});

afterAll(() => {
  console.info(`reader fuzz: seed 0x${SEED.toString(16)}, ${totalCases} cases, ${failures.length} failures`);
  if (process.env.NYDUS_FUZZ_STATS) {
    for (const [target, m] of outcomes) {
      console.info(`  ${target}: ${[...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}=${n}`).join(', ')}`);
    }
  }
});
