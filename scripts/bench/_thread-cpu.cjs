// Preload for benchmarked Node processes (node -r _thread-cpu.cjs ...; not a benchmark itself):
// at exit, writes the CPU time (user + system, seconds) of the main thread and of all threads
// to the file named by BENCH_THREAD_CPU_FILE, from /proc/self/task/*/stat. The main thread is the
// one JavaScript runs on: its time bounds the wall time however many cores there are.
'use strict';
const { readdirSync, readFileSync, writeFileSync } = require('node:fs');

const out = process.env.BENCH_THREAD_CPU_FILE;
const ticks = 100; // USER_HZ on Linux
function threadSeconds(tid) {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}
if (out) {
  process.on('exit', () => {
    let main = 0;
    let all = 0;
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        const s = threadSeconds(tid);
        all += s;
        if (tid === String(process.pid)) main = s;
      } catch {
        // (a thread that ended meanwhile)
      }
    }
    writeFileSync(out, JSON.stringify({ mainCpuSeconds: main, threadsCpuSeconds: all }));
  });
}
