export { parseReference, formatReference, registryEndpointHost, dockerHubRegistry, dockerHubEndpoint } from './reference.js';
export type { ImageReference } from './reference.js';
export { parseImageLocation } from './image-location.js';
export type { ImageLocation } from './image-location.js';
export { dockerConfigCredentials, normalizeAuthKey, staticCredentials } from './docker-config.js';
export type { Credentials, CredentialsProvider } from './docker-config.js';
export { parseWwwAuthenticate } from './www-authenticate.js';
export type { AuthChallenge } from './www-authenticate.js';
export { Authorizer, mergeScopes } from './authorizer.js';
export { RegistryResponseError, RegistryConnectionError, RegistryProtocolError, describeNetworkError, redactUrl, maxErrorBodyBytes } from './errors.js';
export type { RegistryErrorDetail } from './errors.js';
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
export { RegistryTransport } from './registry-transport.js';
export { endpointFor } from './endpoint.js';
export type { RegistryEndpoint, MirrorOptions, ProxyOptions } from './endpoint.js';
export type { RegistryTransportOptions, RegistryRequest, RegistryReply, HttpMethod } from './registry-transport.js';
export { RegistryClient } from './registry-client.js';
export type { Fetcher, Pusher, ManifestStore } from './capabilities.js';
export type { RegistryClientOptions, ManifestData, PushBlobOptions, UploadOptions, SignalOptions, FetchOptions, BudgetOptions } from './registry-client.js';
export { BlobUpload, checkPushChunkSize, MIN_PUSH_CHUNK_SIZE, MAX_PUSH_CHUNK_SIZE } from './blob-upload.js';
export type { CommittedBlob, BlobUploadOptions } from './blob-upload.js';
export { resumableBody } from './blob-reader.js';
export type { ResumableBodyOptions, OpenedBody } from './blob-reader.js';
export { VerifyStream } from './verify-stream.js';
export { manifestAcceptTypes, sniffManifestMediaType } from './manifest-media-types.js';
export { parsePlatform, formatPlatform, hostPlatform, platformMatches } from './platform.js';
export { Limiter } from './limiter.js';
export { OciLayout, OciLayoutSource, OciLayoutTarget, refNameAnnotation } from './oci-layout.js';
export { RegistryImageSource, RegistryImageTarget } from './registry-image-store.js';
export type { RegistryImageTargetOptions } from './registry-image-store.js';
export type { ImageSource, ImageTarget, RegistryLocation, FetchBlobOptions, PushBlobTargetOptions } from './image-store.js';
export { copyImage, COPY_IMAGE_DEFAULTS } from './copy-image.js';
export type { CopyImageOptions, CopyImageResult, CopySideOptions, CopyProgressEvent, ExtraBlobsContext } from './copy-image.js';
export { readBodyLimited } from './http-body.js';
