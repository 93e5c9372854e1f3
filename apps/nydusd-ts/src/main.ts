// nydusd-ts: wiring only. The command line, the daemon and its API live in @nydus-ts/cli/nydusd
// and @nydus-ts/daemon; this entry gives them the process (stdio, cwd, signals, exit code).
// Each entry is loaded only when its command runs (the daemon's modules cost `pull` ~0.4 CPU-s).

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

// Reads from the cache files run on the libuv thread pool; the kernel sends up to 10 FUSE
// requests at once (and more read-ahead in erofs mode): give it room. Read when the pool
// starts, i.e. after this line.
process.env.UV_THREADPOOL_SIZE ??= '16';

// `nydusd-ts snapshotter|pull`: the containerd integration, on its own entry.
if (process.argv[2] === 'snapshotter' || process.argv[2] === 'pull') {
  const containerd = await import('@nydus-ts/cli/containerd');
  process.exit(await containerd.runNydusdContainerd(process.argv.slice(2), containerd.processIo(), containerd.processHooks()));
}

const { processIo, runNydusd } = await import('@nydus-ts/cli/nydusd');
const code = await runNydusd(process.argv.slice(2), processIo(), {
  onSignal(handler) {
    const onSignal = (signal: NodeJS.Signals): void => handler(signal);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    return () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    };
  },
});

// The daemon has stopped (unmounted, caches flushed): exit now rather than wait for the FUSE
// binding's worker thread and idle keep-alive sockets to let the event loop drain.
process.exit(code);
