// @nydus-ts/registry/internal: pieces of the client that this repository's other packages and
// tests use. No stability promise.

// Auth: challenges, token and basic auth per scope, docker config keys.
export { parseWwwAuthenticate } from './www-authenticate.js';
export type { AuthChallenge } from './www-authenticate.js';
export { Authorizer, mergeScopes } from './authorizer.js';
export { normalizeAuthKey } from './docker-config.js';
// Endpoint settings checked against the registry a reference names.
export { endpointFor } from './endpoint.js';
// Bodies: resumable, verified, size-limited.
export { resumableBody } from './blob-reader.js';
export type { ResumableBodyOptions, OpenedBody } from './blob-reader.js';
export { VerifyStream } from './verify-stream.js';
export { readBodyLimited } from './http-body.js';
export { describeNetworkError, maxErrorBodyBytes } from './errors.js';
// Manifest media types, a concurrency limiter, waiting for every task before failing.
export { manifestAcceptTypes, sniffManifestMediaType } from './manifest-media-types.js';
export { Limiter } from './limiter.js';
export { settleAll } from './settle-all.js';
