import { availableParallelism } from 'node:os';
import type { CliIo } from '@nydus-ts/cli';

// Output piped into a reader that closes early (`| head`) is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

// Gzip inflate and zstd compression run on the libuv thread pool (4 threads by default): give it
// one thread per core on larger machines. Read when the pool starts, i.e. after this line.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

const argv = process.argv.slice(2);
// `copy` needs only the registry client: its own entry skips loading the converter and format
// libraries that the full command table imports (about 0.1 s of start-up).
if (argv[0] === 'copy') {
  const { processIo, interruptOnSignals, runNydusifyCopy } = await import('@nydus-ts/cli/copy');
  await finish(runNydusifyCopy, { ...processIo(), signal: interruptOnSignals() });
} else if (argv[0] === 'image') {
  // Likewise `image` needs only @nydus-ts/image (local images), not the registry client.
  const { processIo, interruptOnSignals, runNydusifyImage } = await import('@nydus-ts/cli/image');
  await finish(runNydusifyImage, { ...processIo(), signal: interruptOnSignals() });
} else {
  const { processIo, interruptOnSignals, runNydusify } = await import('@nydus-ts/cli');
  await finish(runNydusify, { ...processIo(), signal: interruptOnSignals() });
}

// SIGINT/SIGTERM abort the run's signal (interruptOnSignals) instead of killing the process, so
// that the run removes what it created and ends with exit code 130/143.
async function finish(run: (argv: string[], io: CliIo) => Promise<number>, io: CliIo): Promise<void> {
  process.exitCode = await run(argv, io);
  // Interrupted: the run has cleaned up; do not wait for sockets or timers it may have left behind.
  if (io.signal?.aborted) process.exit(process.exitCode);
}
