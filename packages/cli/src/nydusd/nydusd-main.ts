/**
 * `@nydus-ts/cli/nydusd`: the `nydusd-ts` command line, nydusd's flags (spec §7.3):
 * `nydusd-ts [fuse] --config C --mountpoint M [--bootstrap B] [--apisock S] [--id ID]
 * [--thread-num N] [--log-level L] [--log-file F] [--prefetch-files P...] [--mode fuse|erofs]`.
 * Runs the daemon until SIGTERM/SIGINT or `PUT /api/v1/daemon/exit`, then unmounts and exits 0.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Command, CommanderError, Option } from 'commander';
import { InvalidArgumentError, exitCodeFor, isNydusError, type LogLevel, type Logger } from '@nydus-ts/core';
import { ApiServer, Daemon, loadDaemonConfigFile, type DaemonMode, type DaemonOptions } from '@nydus-ts/daemon';
import type { CliIo } from '../io.js';
import { writeLine } from '../io.js';
import { withFlagNames } from '../program-core.js';
import { parseChoice, parsePositiveInt } from '../parse.js';
import { baselineWasmOnly } from '../v8-flags.js';
import { createJsonLogger } from './json-logger.js';

export type { CliIo } from '../io.js';

/**
 * The process's io for the daemon: unlike the other commands' `processIo`, signals are not turned
 * into an abort with a forced exit after a grace period; the daemon handles SIGTERM/SIGINT itself
 * (see RunNydusdHooks.onSignal): in-flight reads finish, it unmounts, then it exits.
 */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
}

const VERSION = '0.1.0';
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
/** nydusd's default log level. */
const DEFAULT_LOG_LEVEL: LogLevel = 'info';
const MODES: readonly DaemonMode[] = ['fuse', 'erofs'];

/** The raw flags, as commander hands them over. */
export interface NydusdFlags {
  config?: string;
  bootstrap?: string;
  mountpoint?: string;
  apisock?: string;
  id?: string;
  supervisor?: string;
  logLevel?: string;
  logFile?: string;
  threadNum?: string;
  fuseThreads?: string;
  prefetchFiles?: string[];
  mode?: string;
  virtualMountpoint?: string;
  failoverPolicy?: string;
  upgrade?: boolean;
  writable?: boolean;
  rlimitNofile?: string;
  logRotationSize?: string;
}

/** What the flags say, validated (paths absolute). */
export interface NydusdArgs {
  config?: string;
  bootstrap?: string;
  mountpoint: string;
  apisock?: string;
  id?: string;
  supervisor?: string;
  logLevel: LogLevel;
  logFile?: string;
  threads?: number;
  prefetchFiles: string[];
  mode: DaemonMode;
  /** Flags accepted for nydusd compatibility but without effect here. */
  ignored: string[];
}

export function parseNydusdFlags(flags: NydusdFlags, cwd: string): NydusdArgs {
  if (!flags.mountpoint) throw new InvalidArgumentError('--mountpoint is required');
  if (flags.upgrade) throw new InvalidArgumentError('--upgrade (FUSE session takeover) is not supported: start a new daemon on the mountpoint instead; it cleans up the dead mount');
  if (flags.writable) throw new InvalidArgumentError('--writable is not supported: RAFS images are read-only');
  if (flags.bootstrap && !flags.config) throw new InvalidArgumentError('--bootstrap needs --config (the backend and cache settings)');
  if (flags.virtualMountpoint !== undefined && flags.virtualMountpoint !== '/') {
    throw new InvalidArgumentError(`--virtual-mountpoint ${flags.virtualMountpoint}: only / is supported (mount more images through the API in shared mode)`);
  }
  const abs = (p: string): string => path.resolve(cwd, p);
  const args: NydusdArgs = {
    mountpoint: abs(flags.mountpoint),
    logLevel: parseChoice((flags.logLevel ?? DEFAULT_LOG_LEVEL).toLowerCase(), '--log-level', LOG_LEVELS),
    prefetchFiles: flags.prefetchFiles ?? [],
    mode: parseChoice(flags.mode ?? 'fuse', '--mode', MODES),
    ignored: [],
  };
  if (flags.config) args.config = abs(flags.config);
  if (flags.bootstrap) args.bootstrap = abs(flags.bootstrap);
  if (flags.apisock) args.apisock = abs(flags.apisock);
  if (flags.id) args.id = flags.id;
  if (flags.supervisor) {
    args.supervisor = flags.supervisor;
    args.ignored.push('--supervisor (no session hand-over)');
  }
  if (flags.logFile) args.logFile = abs(flags.logFile);
  const threads = flags.threadNum ?? flags.fuseThreads;
  if (threads !== undefined) args.threads = parsePositiveInt(threads, '--thread-num');
  for (const p of args.prefetchFiles) if (!p.startsWith('/')) throw new InvalidArgumentError(`--prefetch-files: "${p}" is not an absolute path inside the image`);
  if (args.mode === 'erofs' && !args.bootstrap) throw new InvalidArgumentError('--mode erofs needs --bootstrap');
  if (flags.failoverPolicy !== undefined) args.ignored.push(`--failover-policy ${flags.failoverPolicy}`);
  if (flags.rlimitNofile !== undefined) args.ignored.push('--rlimit-nofile');
  if (flags.logRotationSize !== undefined) args.ignored.push('--log-rotation-size');
  return args;
}

export function buildNydusdProgram(io: CliIo, run: (args: NydusdArgs) => Promise<void>): Command {
  return new Command('nydusd-ts')
    .description('Serve a Nydus (RAFS v6) image lazily: FUSE (or kernel EROFS over FUSE blob devices), chunks fetched on demand, verified and cached; nydusd-compatible flags, config and API')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError()
    .option('-C, --config <file>', 'nydusd configuration (JSON, v1 or v2 form)')
    .option('-B, --bootstrap <file>', 'RAFS v6 bootstrap to serve at the mountpoint (without it: shared mode, images mounted through the API)')
    .option('-M, --mountpoint <dir>', 'where the filesystem appears')
    .option('-A, --apisock <path>', 'unix socket for the HTTP API')
    .option('--id <id>', 'daemon id reported by the API')
    .option('--supervisor <path>', 'accepted for nydusd compatibility (session hand-over is not supported)')
    .option('-l, --log-level <level>', `log level: ${LOG_LEVELS.join(', ')} (default ${DEFAULT_LOG_LEVEL})`)
    .option('-L, --log-file <file>', 'write logs (JSON lines) here instead of stderr')
    .option('--thread-num <n>', 'accepted for nydusd compatibility (libfuse 2 sizes its own worker pool)')
    .addOption(new Option('--fuse-threads <n>', 'alias of --thread-num').hideHelp())
    .option('--prefetch-files <path...>', 'files or directories of the image to prefetch in the background')
    .option('--mode <mode>', 'fuse: serve the image over FUSE; erofs: kernel EROFS over FUSE blob devices', 'fuse')
    .option('-m, --virtual-mountpoint <path>', 'where --bootstrap appears inside the mount (only /)')
    .addOption(new Option('--failover-policy <policy>', 'accepted for nydusd compatibility').hideHelp())
    .addOption(new Option('--upgrade', 'not supported').hideHelp())
    .addOption(new Option('--writable', 'not supported').hideHelp())
    .addOption(new Option('--rlimit-nofile <n>', 'accepted for nydusd compatibility').hideHelp())
    .addOption(new Option('--log-rotation-size <n>', 'accepted for nydusd compatibility').hideHelp())
    .action(async (flags: NydusdFlags) => {
      await run(parseNydusdFlags(flags, io.cwd));
    });
}

/** Fetched bytes between two young-generation collections, and between two full ones (see gcEvery). */
const YOUNG_GC_BYTES = 4 << 20;
const FULL_GC_BYTES = 32 << 20;

/**
 * V8's `gc`: a full collection when called without an argument; a young-generation one when
 * given a truthy one (Node 20's V8 reads any argument, `{ type: 'major' }` included, as
 * "minor").
 */
type GcFunction = (minor?: true) => void;

/** V8's collector, exposed at run time (undefined where the runtime refuses). */
function exposedGc(): GcFunction | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as GcFunction | undefined;
    return typeof gc === 'function' ? gc : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Keeps the daemon's RSS flat while a cold read streams hundreds of MiB of chunks: every socket
 * read is a fresh 64 KiB Buffer, and V8 lets tens of MiB of dead ones pile up before collecting
 * them. A young-generation collection after every few MiB fetched frees most of them early (as
 * `nydusify-ts copy` does), for ~1 ms each. Those still in flight at a young collection (a
 * fetch's buffered chunks, its request and stream objects) move to the old generation, which V8
 * lets grow to ~2.5x what the daemon keeps before it collects it: a full collection every
 * 32 MiB fetched (~10-20 ms) keeps their buffers from piling up in the malloc heap.
 */
function gcEvery(gc: GcFunction, youngBytes: number, fullBytes: number): (n: number) => void {
  let young = 0;
  let full = 0;
  return (n) => {
    young += n;
    full += n;
    if (full >= fullBytes) {
      full = 0;
      young = 0;
      gc();
    } else if (young >= youngBytes) {
      young = 0;
      gc(true);
    }
  };
}

export interface RunNydusdHooks {
  /** Registers a handler for SIGTERM/SIGINT; returns an unregister function. */
  onSignal?: (handler: (signal: string) => void) => () => void;
}

/**
 * Runs `nydusd-ts` with `argv` (without node and script): starts the daemon, serves until a
 * signal or the API's exit, stops gracefully. Returns the exit code.
 */
export async function runNydusd(argv: string[], io: CliIo, hooks: RunNydusdHooks = {}): Promise<number> {
  const rest = argv[0] === 'fuse' ? argv.slice(1) : argv;
  let logStream: WriteStream | undefined;
  const program = buildNydusdProgram(io, async (args) => {
    if (args.logFile) {
      const stream = createWriteStream(args.logFile, { flags: 'a' });
      await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject));
      logStream = stream;
    }
    const out = logStream;
    const logger = createJsonLogger({ level: args.logLevel, write: (line) => (out ? out.write(line + '\n') : writeLine(io.stderr, line)) });
    await serve(args, logger, hooks);
  });
  try {
    await program.parseAsync(rest, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    writeLine(io.stderr, `error: ${isNydusError(err) ? withFlagNames(err.message, err.optionNames) : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return exitCodeFor(err);
  } finally {
    if (logStream) await new Promise<void>((resolve) => logStream!.end(resolve));
  }
}

async function serve(args: NydusdArgs, logger: Logger & { setLevel(level: LogLevel): void }, hooks: RunNydusdHooks): Promise<void> {
  for (const flag of args.ignored) logger.warn(`ignored: ${flag}`);
  const options: DaemonOptions = { mountpoint: args.mountpoint, mode: args.mode, prefetchFiles: args.prefetchFiles, logger };
  // llhttp's TurboFan tier-up compiles on V8's worker threads with ~20 MB of scratch memory
  // that their malloc arenas then keep: a peak of RSS for no measurable gain (see v8-flags.ts).
  baselineWasmOnly();
  const gc = exposedGc();
  if (gc) options.onFetched = gcEvery(gc, YOUNG_GC_BYTES, FULL_GC_BYTES);
  if (args.config) {
    const { config, raw, warnings } = await loadDaemonConfigFile(args.config);
    for (const w of warnings) logger.warn(`config: ${w}`);
    options.config = config;
    options.rawConfig = raw;
  }
  if (args.bootstrap) options.bootstrap = args.bootstrap;
  if (args.id) options.id = args.id;
  if (args.supervisor) options.supervisor = args.supervisor;

  let api: ApiServer | undefined;
  const daemon = await Daemon.start(options);
  // Loading and checking the bootstrap leaves its garbage in the old generation: collect it
  // once, so the daemon serves from a heap sized for what it keeps.
  gc?.();
  let stopping: Promise<void> | undefined;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info('shutting down', { reason: why });
      await api?.close().catch(() => undefined);
      await daemon.stop();
    })();
    return stopping;
  };
  const unregister = hooks.onSignal?.((signal) => void stop(signal));
  try {
    if (args.apisock) {
      api = new ApiServer({ daemon, logger, version: VERSION, setLogLevel: (level) => logger.setLevel(level), onExit: () => void stop('API exit') });
      await api.listen(args.apisock);
      logger.info('API listening', { socket: args.apisock });
    }
    await daemon.whenStopped();
    await stopping;
  } catch (err) {
    await stop('start-up failure');
    throw err;
  } finally {
    unregister?.();
  }
}
