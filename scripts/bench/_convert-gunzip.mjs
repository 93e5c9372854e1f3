// Baseline for the convert benchmark: Node's zlib gunzip of the given layer files, all at once,
// output discarded. Usage: node _convert-gunzip.mjs FILE...
import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

const sink = () => new Writable({ write(_c, _e, cb) { cb(); } });
await Promise.all(process.argv.slice(2).map((f) => pipeline(createReadStream(f, { highWaterMark: 1 << 20 }), createGunzip(), sink())));
