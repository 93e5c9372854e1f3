// @nydus-ts/registry: an OCI distribution client that streams (verified, resumable blobs with
// backpressure; manifests byte for byte), image copies between registries and OCI layouts.
// Knows nothing of RAFS and reads no environment. Pieces for this repository's own packages
// are behind ./internal; test registries behind ./testing; the ImageSource suite behind ./conformance.

// References and locations.
export { parseReference, formatReference, registryEndpointHost, dockerHubRegistry, dockerHubEndpoint } from './reference.js';
export type { ImageReference } from './reference.js';
export { parseImageLocation } from './image-location.js';
export type { ImageLocation } from './image-location.js';
export { parsePlatform, formatPlatform, hostPlatform, platformMatches } from './platform.js';

// How to reach a registry: endpoint settings and credentials.
export type { RegistryEndpoint, MirrorOptions, ProxyOptions } from './endpoint.js';
export { dockerConfigCredentials, staticCredentials } from './docker-config.js';
export type { Credentials, CredentialsProvider } from './docker-config.js';

// The client: manifests, blobs (ranges, uploads, mounts) of one registry.
export { RegistryClient } from './registry-client.js';
export type { RegistryClientOptions, ManifestData, PushBlobOptions, UploadOptions, SignalOptions, FetchOptions, BudgetOptions } from './registry-client.js';
export type { Fetcher, Pusher, ManifestStore } from './capabilities.js';
export { RegistryTransport } from './registry-transport.js';
export type { RegistryTransportOptions, RegistryRequest, RegistryReply, HttpMethod } from './registry-transport.js';
export { BlobUpload, checkPushChunkSize, MIN_PUSH_CHUNK_SIZE, MAX_PUSH_CHUNK_SIZE } from './blob-upload.js';
export type { CommittedBlob, BlobUploadOptions } from './blob-upload.js';

// Retries and timeouts.
export {
  resolveRetryOptions,
  resolveTimeoutOptions,
  isRetryableError,
  isRetryableStatus,
  parseRetryAfter,
  withRetry,
  RetryBudget,
  RetryExhaustedError,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
} from './retry.js';
export type { RetryOptions, ResolvedRetryOptions, TimeoutOptions, ResolvedTimeoutOptions } from './retry.js';

// Errors (NydusErrors with the request, the registry and what was asked).
export { RegistryResponseError, RegistryConnectionError, RegistryProtocolError, redactUrl } from './errors.js';
export type { RegistryErrorDetail } from './errors.js';

// Image sources and targets: registry repositories and OCI layouts; copying between them.
export type { ImageSource, ImageTarget, RegistryLocation, FetchBlobOptions, PushBlobTargetOptions } from './image-store.js';
export { RegistryImageSource, RegistryImageTarget } from './registry-image-store.js';
export type { RegistryImageTargetOptions } from './registry-image-store.js';
export { OciLayout, OciLayoutSource, OciLayoutTarget, refNameAnnotation } from './oci-layout.js';
export { copyImage, COPY_IMAGE_DEFAULTS } from './copy-image.js';
export type { CopyImageOptions, CopyImageResult, CopySideOptions, CopyProgressEvent, ExtraBlobsContext } from './copy-image.js';
