import { processIo, runNydusify } from '@nydus-ts/cli';

// Output piped into a reader that closes early (`| head`) is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

process.exitCode = await runNydusify(process.argv.slice(2), processIo());
