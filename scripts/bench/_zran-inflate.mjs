// Inflate throughput on one tar.gz, in this process (run by zran.mjs; not a benchmark itself):
// the checkpointing gunzip of @nydus-ts/native (Z_BLOCK stops, steps on the libuv thread pool;
// with a 32 KiB window copied at every block boundary, and with window sizes only, as the
// converter runs it) and the resumed inflate from checkpoints, against Node's zlib on the same
// bytes. Prints one JSON line on stdout.
//   node _zran-inflate.mjs FILE.tar.gz RUNS
import { readFileSync } from 'node:fs';
import { createGunzip, gunzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { CheckpointingGunzip, inflateFromCheckpointAsync } from '@nydus-ts/native';

const [file, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 5);
const gz = readFileSync(file);
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const STEP_IN = 1 << 20;
const STEP_OUT = 1 << 20;

async function nodeStream() {
  let n = 0;
  const pieces = [];
  for (let i = 0; i < gz.length; i += STEP_IN) pieces.push(gz.subarray(i, i + STEP_IN));
  for await (const c of Readable.from(pieces).pipe(createGunzip({ chunkSize: STEP_OUT }))) n += c.length;
  return n;
}

/** 1 MiB input pieces, 1 MiB output steps on the thread pool (the converter's way without windows). */
async function checkpointing(windows = true) {
  const g = new CheckpointingGunzip(windows ? { maxCheckpointsPerStep: 64 } : { maxCheckpointsPerStep: 1024, windows: false });
  const out = Buffer.allocUnsafe(STEP_OUT);
  let fed = 0;
  let input = gz.subarray(0, 0);
  let n = 0;
  const checkpoints = [];
  for (;;) {
    if (input.length === 0) {
      if (fed >= gz.length) break;
      input = gz.subarray(fed, fed + STEP_IN);
      fed += input.length;
    }
    const r = await g.stepAsync(input, out);
    n += r.produced;
    for (const c of r.checkpoints) checkpoints.push(c);
    input = input.subarray(r.consumed);
    if (r.status === 'member-end') {
      if (input.length === 0 && fed >= gz.length) break;
      g.nextMember();
    }
  }
  return { n, checkpoints };
}

const time = async (fn) => {
  const t = process.hrtime.bigint();
  const r = await fn();
  return { seconds: Number(process.hrtime.bigint() - t) / 1e9, r };
};

const rows = { nodeStream: [], nodeSync: [], checkpointing: [], checkpointingNoWindows: [], resume: [] };
let outBytes = 0;
let checkpointCount = 0;
let resumeBytes = 0;
for (let run = 0; run < runs; run++) {
  const a = await time(nodeStream);
  rows.nodeStream.push(a.seconds);
  outBytes = a.r;
  rows.nodeSync.push((await time(() => gunzipSync(gz).length)).seconds);
  const b = await time(checkpointing);
  if (b.r.n !== outBytes) throw new Error(`checkpointing gunzip produced ${b.r.n} bytes, Node ${outBytes}`);
  rows.checkpointing.push(b.seconds);
  checkpointCount = b.r.checkpoints.length;
  const bare = await time(() => checkpointing(false));
  if (bare.r.n !== outBytes || bare.r.checkpoints.length !== checkpointCount) throw new Error('checkpointing gunzip without windows differs');
  rows.checkpointingNoWindows.push(bare.seconds);
  // Resumed inflate: 1 MiB from each of 64 checkpoints spread over the stream (what a cold chunk
  // read does), against Node's gunzip of the whole stream per MB produced.
  const cps = b.r.checkpoints;
  const picks = Array.from({ length: 64 }, (_, i) => cps[Math.floor((i * cps.length) / 64)]).filter((c) => c.outOffset + STEP_OUT <= outBytes);
  const out = Buffer.allocUnsafe(STEP_OUT);
  const c = await time(async () => {
    for (const cp of picks) await inflateFromCheckpointAsync(gz.subarray(cp.inOffset, Math.min(gz.length, cp.inOffset + 4 * STEP_OUT)), cp, out);
    return picks.length * STEP_OUT;
  });
  rows.resume.push(c.seconds);
  resumeBytes = c.r;
}
const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
process.stdout.write(JSON.stringify({ gzBytes: gz.length, outBytes, checkpointCount, resumeBytes, seconds: m }) + '\n');
