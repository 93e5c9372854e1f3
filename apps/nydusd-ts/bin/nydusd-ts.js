#!/usr/bin/env node
// bundle/ is built by `npm run build` (tsc, then scripts/bundle.mjs).
import '../bundle/main.js';
