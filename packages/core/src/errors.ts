/**
 * One error hierarchy for every package. Callers and tests match on `code`, never on message
 * text. The codes are categories (they drive CLI exit codes and gRPC statuses); subclasses
 * carry the context of where the error happened.
 */
export type NydusErrorCode =
  | 'INVALID_ARGUMENT'
  | 'INVALID_FORMAT'
  | 'UNSUPPORTED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'UNAVAILABLE'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'CANCELLED'
  | 'INTERNAL';

const brand = Symbol.for('nydus-ts.error');

export interface NydusErrorOptions {
  cause?: unknown;
  /**
   * Options the message names, by their library name (`blobDir`, `chunkDict`): an application
   * shows them as it calls them (the CLI as the flags that set them).
   */
  optionNames?: readonly string[];
}

export class NydusError extends Error {
  readonly code: NydusErrorCode;
  /** Library option names the message mentions (see {@link NydusErrorOptions.optionNames}). */
  readonly optionNames: readonly string[];
  readonly [brand] = true;

  constructor(code: NydusErrorCode, message: string, options?: NydusErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.optionNames = options?.optionNames ?? [];
    this.name = 'NydusError';
  }
}

/** True for any NydusError (also across duplicate installs), optionally of one code. */
export function isNydusError(err: unknown, code?: NydusErrorCode): err is NydusError {
  if (typeof err !== 'object' || err === null || (err as { [brand]?: boolean })[brand] !== true) {
    return false;
  }
  return code === undefined || (err as NydusError).code === code;
}

export class InvalidArgumentError extends NydusError {
  constructor(message: string, options?: NydusErrorOptions) {
    super('INVALID_ARGUMENT', message, options);
    this.name = 'InvalidArgumentError';
  }
}

/** A structure on disk or on the wire violates its format. */
export class FormatError extends NydusError {
  /** Name of the structure and field, e.g. `superblock.s_magic`. */
  readonly field: string;
  /** Absolute byte offset of the field, when known. */
  readonly offset: number | undefined;
  readonly value: unknown;

  constructor(field: string, message: string, details: { offset?: number; value?: unknown; cause?: unknown } = {}) {
    const at = details.offset === undefined ? '' : ` at offset ${details.offset}`;
    super('INVALID_FORMAT', `${field}${at}: ${message}`, { cause: details.cause });
    this.name = 'FormatError';
    this.field = field;
    this.offset = details.offset;
    this.value = details.value;
  }
}

/** Content did not match the digest it was promised to have. */
export class DigestMismatchError extends NydusError {
  readonly expected: string;
  readonly actual: string;
  /** What was being verified, e.g. `chunk 3 of blob be7d…` or a blob digest. */
  readonly subject: string;

  constructor(subject: string, expected: string, actual: string) {
    super('DATA_LOSS', `${subject}: digest mismatch (expected ${expected}, got ${actual})`);
    this.name = 'DigestMismatchError';
    this.subject = subject;
    this.expected = expected;
    this.actual = actual;
  }
}

export class NotFoundError extends NydusError {
  constructor(message: string, options?: NydusErrorOptions) {
    super('NOT_FOUND', message, options);
    this.name = 'NotFoundError';
  }
}

export class UnsupportedError extends NydusError {
  constructor(message: string, options?: NydusErrorOptions) {
    super('UNSUPPORTED', message, options);
    this.name = 'UnsupportedError';
  }
}

export class CancelledError extends NydusError {
  constructor(message = 'operation cancelled', options?: NydusErrorOptions) {
    super('CANCELLED', message, options);
    this.name = 'CancelledError';
  }
}

/** Node's error for a failed system call: `code` is the errno name, `path` the file (if any). */
interface SystemCallError extends Error {
  code: string;
  syscall: string;
  path?: string;
  dest?: string;
}

/** True for an error of a failed system call (ENOENT, ENOSPC, ...), as Node's fs raises them. */
export function isSystemCallError(err: unknown): err is SystemCallError {
  const e = err as Partial<SystemCallError> | null;
  return typeof e === 'object' && e !== null && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.syscall === 'string';
}

const ERRNO_CODES: Partial<Record<string, NydusErrorCode>> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'ALREADY_EXISTS',
  ENOTEMPTY: 'ALREADY_EXISTS',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  ENOSPC: 'RESOURCE_EXHAUSTED',
  EDQUOT: 'RESOURCE_EXHAUSTED',
  EMFILE: 'RESOURCE_EXHAUSTED',
  ENFILE: 'RESOURCE_EXHAUSTED',
  ENOMEM: 'RESOURCE_EXHAUSTED',
  EFBIG: 'RESOURCE_EXHAUSTED',
  ENOTDIR: 'FAILED_PRECONDITION',
  EISDIR: 'FAILED_PRECONDITION',
  ELOOP: 'FAILED_PRECONDITION',
  ENAMETOOLONG: 'FAILED_PRECONDITION',
  EXDEV: 'FAILED_PRECONDITION',
  EIO: 'DATA_LOSS',
};

/**
 * A system call on a file failed: one line naming what was done, the path and the errno, e.g.
 * `writing out/.blob-1234-5f2e: no space left on device (ENOSPC)`. The code follows the errno
 * (ENOENT is NOT_FOUND, ENOSPC RESOURCE_EXHAUSTED, ...); all of them are exit code 1.
 */
export class FileSystemError extends NydusError {
  readonly path: string;
  /** The errno name, e.g. `ENOSPC`. */
  readonly errno: string;

  constructor(path: string, errno: string, description: string, options?: NydusErrorOptions & { action?: string }) {
    super(ERRNO_CODES[errno] ?? 'UNAVAILABLE', `${options?.action ? `${options.action} ` : ''}${path}: ${description} (${errno})`, options);
    this.name = 'FileSystemError';
    this.path = path;
    this.errno = errno;
  }
}

/** What Node says an errno means: `ENOSPC: no space left on device, write` → `no space left on device`. */
function errnoDescription(err: SystemCallError): string {
  const m = /^E[A-Z0-9]+: (.*?), \w+/.exec(err.message);
  return m ? m[1]! : err.message;
}

/**
 * A failed system call as a FileSystemError naming `path` (default: the path Node recorded) and
 * what was being done (`action`, e.g. `writing`). Anything else is returned as it is.
 */
export function fileSystemError(err: unknown, path?: string, action?: string): unknown {
  if (!isSystemCallError(err)) return err;
  const where = path ?? (err.dest ? `${err.path} -> ${err.dest}` : err.path) ?? err.syscall;
  return new FileSystemError(where, err.code, errnoDescription(err), { cause: err, ...(action !== undefined && { action }) });
}

/** Throws a CancelledError carrying the signal's reason if the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new CancelledError('operation cancelled', { cause: signal.reason });
  }
}

/** Process exit code for an error: 2 for usage/input problems, 1 otherwise. */
export function exitCodeFor(err: unknown): number {
  if (isNydusError(err) && (err.code === 'INVALID_ARGUMENT' || err.code === 'INVALID_FORMAT')) {
    return 2;
  }
  return 1;
}
