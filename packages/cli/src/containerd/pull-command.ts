import type { Command } from 'commander';
import { InvalidArgumentError, createConsoleLogger } from '@nydus-ts/core';
import { dockerConfigCredentials, parsePlatform } from '@nydus-ts/registry';
import { dockerConfigPath, parseCredentials } from '../registry-endpoint.js';
import type { LazyPullOptions } from '@nydus-ts/snapshotter/pull';
import type { CliIo } from '../io.js';
import { writeLine } from '../io.js';
import { writeJsonFile } from '../shared-options.js';

export interface PullFlags {
  address?: string;
  snapshotter?: string;
  namespace?: string;
  plainHttp?: boolean;
  creds?: string;
  platform?: string;
  nydus?: boolean;
  outputJson?: string;
  logLevel?: string;
}

export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';

export function parsePullFlags(ref: string | undefined, flags: PullFlags, io: CliIo): LazyPullOptions {
  if (!ref) throw new InvalidArgumentError('an image reference is required');
  if (!flags.snapshotter) throw new InvalidArgumentError('--snapshotter is required (e.g. nydus-ts, or overlayfs for a full pull)');
  const options: LazyPullOptions = {
    address: flags.address ?? DEFAULT_CONTAINERD_ADDRESS,
    snapshotter: flags.snapshotter,
    ref,
    namespace: flags.namespace ?? 'default',
    plainHttp: flags.plainHttp ?? false,
    credentials: flags.creds !== undefined ? parseCredentials(flags.creds, '--creds') : dockerConfigCredentials(dockerConfigPath(io.env)),
  };
  if (flags.platform !== undefined) options.platform = parsePlatform(flags.platform);
  if (flags.nydus !== undefined) options.preferNydus = flags.nydus;
  return options;
}

export function registerPullCommand(program: Command, io: CliIo): void {
  program
    .command('pull')
    .description("pull an image into containerd with the labels a lazy snapshotter needs: Nydus data layers are not downloaded; layers the snapshotter asks for are unpacked")
    .argument('<ref>', 'image reference, e.g. 127.0.0.1:5000/app:v1-nydus')
    .option('--address <sock>', `containerd's socket (default ${DEFAULT_CONTAINERD_ADDRESS})`)
    .option('--snapshotter <name>', 'snapshotter to unpack into (the proxy plugin name, or overlayfs)')
    .option('--namespace <ns>', 'containerd namespace (default "default")')
    .option('--plain-http', 'allow plain HTTP to the registry')
    .option('--creds <user:pass>', 'registry credentials (default: docker config)')
    .option('--platform <os/arch>', "platform to pick from an index (default: this machine's)")
    .option('--nydus', 'from an index with both, take the Nydus manifest (default unless --snapshotter is overlayfs/native)')
    .option('--no-nydus', 'from an index with both, take the OCI manifest')
    .option('--output-json <file>', 'write the pull report (layers, bytes, time) as JSON')
    .option('--log-level <level>', 'log level on stderr (default warn)')
    .action(async (ref: string, flags: PullFlags) => {
      const options = parsePullFlags(ref, flags, io);
      options.logger = createConsoleLogger({ level: (flags.logLevel as 'info') ?? 'warn', write: (l) => io.stderr.write(l + '\n') });
      const { lazyPull } = await import('@nydus-ts/snapshotter/pull');
      const r = await lazyPull(options);
      const count = (how: string): number => r.layers.filter((l) => l.how === how).length;
      writeLine(
        io.stdout,
        `${r.name}: ${r.nydus ? 'Nydus' : 'OCI'} image, ${r.layers.length} layers (${count('remote')} remote, ${count('unpacked')} unpacked, ${count('present')} present), ` +
          `${(r.bytesFetched / 1e6).toFixed(2)} MB fetched in ${r.seconds.toFixed(2)} s`,
      );
      if (flags.outputJson) await writeJsonFile(flags.outputJson, r);
    });
}
