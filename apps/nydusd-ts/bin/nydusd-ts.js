#!/usr/bin/env -S node --max-semi-space-size=1
// A small young generation keeps the daemon's RSS down by ~30 MB under load (it can only be set
// when the process starts; a launcher running `node nydusd-ts.js` may pass it too).
// bundle/ is built by `npm run build` (tsc, then scripts/bundle.mjs).
import '../bundle/main.js';
