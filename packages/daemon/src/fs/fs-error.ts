import { constants } from 'node:os';
import { isNydusError } from '@nydus-ts/core';

export const Errno = {
  ENOENT: constants.errno.ENOENT,
  EIO: constants.errno.EIO,
  EBADF: constants.errno.EBADF,
  EACCES: constants.errno.EACCES,
  ENOTDIR: constants.errno.ENOTDIR,
  EISDIR: constants.errno.EISDIR,
  EINVAL: constants.errno.EINVAL,
  EROFS: constants.errno.EROFS,
  ERANGE: constants.errno.ERANGE,
  ENODATA: constants.errno.ENODATA,
  ENOTSUP: constants.errno.ENOTSUP,
  ENOSYS: constants.errno.ENOSYS,
  ENAMETOOLONG: constants.errno.ENAMETOOLONG,
  EBUSY: constants.errno.EBUSY,
} as const;

/** A filesystem operation's failure as a positive errno (the FUSE layer negates it). */
export class FsError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
    this.name = 'FsError';
  }
}

/** The errno an operation answers for `err`: its own for FsError, EIO for everything else. */
export function errnoOf(err: unknown): number {
  if (err instanceof FsError) return err.errno;
  if (isNydusError(err, 'NOT_FOUND')) return Errno.ENOENT;
  return Errno.EIO;
}
