#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=1
// A small young generation keeps the daemon's RSS down by ~30 MB under load, two malloc arenas
// (instead of up to 8 per core, one per busy thread: libfuse's, the thread pool's) by ~6 MB;
// both can only be set when the process starts: a launcher running `node nydusd-ts.js` may pass
// them too (docs/nydusd.md, Memory).
// bundle/ is built by `npm run build` (tsc, then scripts/bundle.mjs).
import '../bundle/main.js';
