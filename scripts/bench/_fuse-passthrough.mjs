#!/usr/bin/env node
// The floor of the daemon benchmark: a bare fuse-native read-only passthrough filesystem over a
// local directory (getattr/readdir/readlink/open/read/release straight to the local files, kernel
// cache and 300 s entry/attr timeouts, nothing else). Not a benchmark itself (run.mjs skips `_`
// files): daemon.mjs starts it as `node _fuse-passthrough.mjs SOURCE MOUNTPOINT` and stops it
// with SIGTERM. Prints "ready" on stdout once mounted.
import { close, lstat, open, read, readdir, readlink } from 'node:fs';
import { createRequire } from 'node:module';

const [source, mountpoint] = process.argv.slice(2);
const require = createRequire(new URL('../../packages/daemon/package.json', import.meta.url));
const Fuse = require('fuse-native');

class Passthrough extends Fuse {
  _fuseOptions() {
    return `${super._fuseOptions()},ro,use_ino,attr_timeout=300,entry_timeout=300,negative_timeout=300`;
  }
}

const errno = (err) => -(err.errno < 0 ? -err.errno : err.errno) || Fuse.EIO;
const ops = {
  getattr(p, cb) {
    lstat(source + p, (err, st) => (err ? cb(errno(err)) : cb(0, { ...st, mtime: st.mtimeMs, atime: st.atimeMs, ctime: st.ctimeMs })));
  },
  readdir(p, cb) {
    readdir(source + p, (err, names) => (err ? cb(errno(err)) : cb(0, names)));
  },
  readlink(p, cb) {
    readlink(source + p, (err, target) => (err ? cb(errno(err)) : cb(0, target)));
  },
  open(p, flags, cb) {
    open(source + p, 'r', (err, fd) => (err ? cb(errno(err)) : cb(0, fd)));
  },
  read(p, fd, buf, len, pos, cb) {
    read(fd, buf, 0, len, pos, (err, n) => cb(err ? errno(err) : n));
  },
  release(p, fd, cb) {
    close(fd, () => cb(0));
  },
};

const fuse = new Passthrough(mountpoint, ops, { kernelCache: true, allowOther: true, timeout: false });
fuse.mount((err) => {
  if (err) {
    process.stderr.write(`mount failed: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write('ready\n');
});
process.on('SIGTERM', () => fuse.unmount(() => process.exit(0)));
