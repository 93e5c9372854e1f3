export {
  NydusError,
  isNydusError,
  InvalidArgumentError,
  FormatError,
  DigestMismatchError,
  NotFoundError,
  UnsupportedError,
  CancelledError,
  FileSystemError,
  fileSystemError,
  isSystemCallError,
  throwIfAborted,
  exitCodeFor,
} from './errors.js';
export type { NydusErrorCode, NydusErrorOptions } from './errors.js';
export { noopLogger, createConsoleLogger } from './logger.js';
export type { Logger, LogLevel, LogFields, ConsoleLoggerOptions } from './logger.js';
export { parseDigest, isDigest, sha256Digest, toHex } from './digest.js';
export type { Digest } from './digest.js';
export { MediaType, isIndexMediaType, isManifestMediaType } from './oci.js';
export type { Platform, Descriptor, ImageManifest, ImageIndex, ImageConfig } from './oci.js';
export type { BlobBackend } from './blob-backend.js';
