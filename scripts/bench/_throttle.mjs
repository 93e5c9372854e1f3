// Bandwidth limit and byte count for one TCP port on the loopback device (not a benchmark
// itself): an htb qdisc on `lo` whose default class is unlimited, plus one class for traffic
// from `port` (the registry's). `tc -s class show` then also counts every byte the registry sent.
import { spawnSync } from 'node:child_process';

function tc(args, { check = true } = {}) {
  const r = spawnSync('tc', args, { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`tc ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

const UNLIMITED = '100gbit';

/**
 * Installs the qdisc (refusing to replace someone else's) and returns a handle. The qdisc is
 * removed by `remove()` and, as a safety net, when the process exits.
 */
export function throttlePort(port) {
  const current = tc(['qdisc', 'show', 'dev', 'lo']);
  if (!/^qdisc noqueue 0: root/m.test(current)) throw new Error(`lo already has a root qdisc (${current.trim()}): not touching it`);
  tc(['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '10', 'r2q', '1000']);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    tc(['qdisc', 'del', 'dev', 'lo', 'root'], { check: false });
  };
  process.on('exit', remove);
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { remove(); process.exit(130); });
  tc(['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', UNLIMITED]);
  tc(['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', UNLIMITED]);
  tc(['filter', 'add', 'dev', 'lo', 'protocol', 'ip', 'parent', '1:', 'prio', '1', 'u32', 'match', 'ip', 'sport', String(port), '0xffff', 'flowid', '1:20']);
  return {
    /** Limits the port's traffic to `bytesPerSecond` (null: unlimited). */
    setRate(bytesPerSecond) {
      const rate = bytesPerSecond === null ? UNLIMITED : `${Math.round((bytesPerSecond * 8) / 1000)}kbit`;
      // burst: one 64 KiB TCP send, so the limit holds over fractions of a second too
      tc(['class', 'change', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', rate, 'ceil', rate, 'burst', '64k', 'cburst', '64k']);
    },
    /** Bytes the port has sent so far. */
    bytesSent() {
      const m = / Sent (\d+) bytes/.exec(tc(['-s', 'class', 'show', 'dev', 'lo', 'classid', '1:20']));
      if (!m) throw new Error('tc: no byte count for class 1:20');
      return Number(m[1]);
    },
    remove,
  };
}
