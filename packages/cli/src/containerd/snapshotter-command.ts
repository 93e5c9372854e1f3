import type { Command } from 'commander';
import { createConsoleLogger } from '@nydus-ts/core';
import type { CliIo } from '../io.js';
import { DEFAULT_ADDRESS, DEFAULT_ROOT, resolveSnapshotterSettings } from './snapshotter-config.js';
import type { SnapshotterFlags } from './snapshotter-config.js';
import type { ContainerdCommandHooks } from './hooks.js';
import { dockerConfigPath } from '../registry-endpoint.js';

export function registerSnapshotterCommand(program: Command, io: CliIo, hooks: ContainerdCommandHooks): void {
  program
    .command('snapshotter')
    .description("serve containerd's snapshots API on a unix socket (a [proxy_plugins] snapshotter): OCI layers as overlayfs does, Nydus images lazily through nydusd-ts")
    .option('--address <sock>', `unix socket to serve on (default ${DEFAULT_ADDRESS})`)
    .option('--root <dir>', `state directory: metadata, snapshots, daemon sockets, blob cache (default ${DEFAULT_ROOT}; not on overlayfs)`)
    .option('--config <file>', 'JSON config (keys as nydus-snapshotter: address, root, daemon_mode, daemon.{nydusd_path,nydusd_config,fs_driver,threads_number}, remote.{credentials_file,registry_hosts})')
    .option('--daemon-mode <mode>', 'shared: one nydusd-ts for all images (default); dedicated: one per image')
    .option('--nydusd-config <file>', 'nydusd (v1) config template; registry backend and cache dir are filled in per image')
    .option('--nydusd-path <path>', 'the nydusd-ts to start (default: this binary)')
    .option('--fs-driver <driver>', 'fusedev (FUSE, default) or erofs (kernel EROFS over the daemon\'s blob files)')
    .option('--threads <n>', "daemons' --thread-num")
    .option('--credentials <file>', 'registry credentials in docker config.json format (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)')
    .option('--log-level <level>', 'trace, debug, info (default), warn, error')
    .action(async (flags: SnapshotterFlags) => {
      const s = await resolveSnapshotterSettings(flags, io.cwd, hooks.selfCommand);
      // Loaded here, not with the command table (`pull` and `--help` need none of it).
      const [{ NydusSnapshotter, serveSnapshotter }, { dockerConfigCredentials }] = await Promise.all([import('@nydus-ts/snapshotter'), import('@nydus-ts/registry')]);
      const logger = createConsoleLogger({ level: s.logLevel, json: true, write: (line) => io.stderr.write(line + '\n') });
      const snapshotter = await NydusSnapshotter.open({
        root: s.root,
        logger,
        daemon: {
          mode: s.daemonMode,
          command: s.nydusdCommand,
          extraArgs: s.fsDriver === 'erofs' ? ['--mode', 'erofs'] : [],
          ...(s.threads !== undefined && { threadNum: s.threads }),
          logLevel: s.daemonLogLevel,
          ...(s.nydusdConfig && { config: s.nydusdConfig }),
        },
        credentials: dockerConfigCredentials(s.credentialsFile ?? dockerConfigPath(io.env)),
        registryHosts: s.registryHosts,
      });
      let server;
      try {
        server = await serveSnapshotter({ address: s.address, snapshotter, logger });
      } catch (err) {
        await snapshotter.close();
        throw err;
      }
      logger.info('snapshotter serving', { address: server.address, root: s.root, daemon_mode: s.daemonMode, fs_driver: s.fsDriver });
      const signal = await new Promise<string>((resolve) => {
        const off = hooks.onSignal((sig) => {
          off();
          resolve(sig);
        });
      });
      logger.info('snapshotter stopping; nydusd-ts daemons keep serving', { signal });
      await server.close();
      await snapshotter.close();
    });
}
