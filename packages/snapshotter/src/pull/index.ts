export { lazyPull } from './lazy-pull.js';
export type { LazyPullOptions, LazyPullResult, PulledLayer } from './lazy-pull.js';
export { chainIds } from './chain-id.js';
export { writeContent } from './content-writer.js';
export type { WriteContentOptions } from './content-writer.js';
