/**
 * NydusError codes ↔ gRPC status codes, as containerd's errdefs maps them (errdefs/grpc.go):
 * containerd branches on NotFound, AlreadyExists, FailedPrecondition and InvalidArgument.
 */
import { status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { NydusError, isNydusError } from '@nydus-ts/core';
import type { NydusErrorCode } from '@nydus-ts/core';

const toGrpc: Partial<Record<NydusErrorCode, status>> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  INVALID_FORMAT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  UNAVAILABLE: status.UNAVAILABLE,
  UNSUPPORTED: status.UNIMPLEMENTED,
  CANCELLED: status.CANCELLED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  DATA_LOSS: status.DATA_LOSS,
};

/** The gRPC error a handler returns for `err` (unknown errors become UNKNOWN, as containerd does). */
export function toServiceError(err: unknown): Partial<ServiceError> {
  if (isNydusError(err)) return { code: toGrpc[err.code] ?? status.UNKNOWN, details: err.message, message: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.UNKNOWN, details: message, message };
}

const fromGrpc = new Map<number, NydusErrorCode>([
  [status.INVALID_ARGUMENT, 'INVALID_ARGUMENT'],
  [status.NOT_FOUND, 'NOT_FOUND'],
  [status.ALREADY_EXISTS, 'ALREADY_EXISTS'],
  [status.FAILED_PRECONDITION, 'FAILED_PRECONDITION'],
  [status.UNAVAILABLE, 'UNAVAILABLE'],
  [status.UNIMPLEMENTED, 'UNSUPPORTED'],
  [status.CANCELLED, 'CANCELLED'],
  [status.DEADLINE_EXCEEDED, 'UNAVAILABLE'],
  [status.PERMISSION_DENIED, 'PERMISSION_DENIED'],
  [status.UNAUTHENTICATED, 'UNAUTHENTICATED'],
  [status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED'],
  [status.DATA_LOSS, 'DATA_LOSS'],
]);

/** A gRPC client error as a NydusError with the matching code (what containerd said, and where). */
export function fromServiceError(err: unknown, what: string): NydusError {
  const e = err as Partial<ServiceError>;
  if (typeof e?.code !== 'number') return new NydusError('INTERNAL', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
  const code = fromGrpc.get(e.code) ?? 'INTERNAL';
  return new NydusError(code, `${what}: ${e.details || e.message}`, { cause: err });
}
