/** Dialing containerd-style gRPC services on a unix socket, with promise-returning calls. */
import * as grpc from '@grpc/grpc-js';
import { containerdService } from './proto.js';
import { fromServiceError } from './grpc-errors.js';

/** gRPC metadata every call carries: containerd's namespace and lease headers. */
export interface CallContext {
  namespace?: string;
  lease?: string;
  /** Per-call deadline in ms (default none). */
  timeoutMs?: number;
}

export function callMetadata(ctx: CallContext): grpc.Metadata {
  const md = new grpc.Metadata();
  if (ctx.namespace) md.set('containerd-namespace', ctx.namespace);
  if (ctx.lease) md.set('containerd-lease', ctx.lease);
  return md;
}

export function callOptions(ctx: CallContext): grpc.CallOptions {
  return ctx.timeoutMs ? { deadline: Date.now() + ctx.timeoutMs } : {};
}

const channelOptions: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': 16 << 20,
  'grpc.max_send_message_length': 16 << 20,
};

/** A client of service `fullName` on unix socket `socketPath`. */
export function dialService(fullName: string, socketPath: string): grpc.Client {
  const Ctor = containerdService(fullName);
  return new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure(), channelOptions);
}

/** Calls unary `method`; errors become NydusErrors with the matching code. */
export function unary<Res>(client: grpc.Client, method: string, request: unknown, ctx: CallContext = {}): Promise<Res> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[method];
  if (typeof fn !== 'function') throw new Error(`no gRPC method ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, request, callMetadata(ctx), callOptions(ctx), (err: grpc.ServiceError | null, res: Res) => {
      if (err) reject(fromServiceError(err, method));
      else resolve(res);
    });
  });
}

/** Collects every message of server-streaming `method`. */
export function serverStream<Res>(client: grpc.Client, method: string, request: unknown, ctx: CallContext = {}): Promise<Res[]> {
  const fn = (client as unknown as Record<string, (...a: unknown[]) => grpc.ClientReadableStream<Res>>)[method];
  if (typeof fn !== 'function') throw new Error(`no gRPC method ${method}`);
  return new Promise((resolve, reject) => {
    const out: Res[] = [];
    const stream = fn.call(client, request, callMetadata(ctx), callOptions(ctx));
    stream.on('data', (m: Res) => out.push(m));
    stream.on('error', (err) => reject(fromServiceError(err, method)));
    stream.on('end', () => resolve(out));
  });
}
