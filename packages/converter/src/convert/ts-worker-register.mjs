// `--import` entry of a layer worker run from TypeScript source: installs ts-worker-hooks.mjs.
import { register } from 'node:module';

register('./ts-worker-hooks.mjs', import.meta.url);
