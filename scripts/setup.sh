#!/usr/bin/env bash
# Idempotent set-up: the Debian packages the project needs, then the npm dependencies.
# Called by `npm test`, `npm run demo` and `npm run bench`; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
  build-essential # C compiler and make: node-gyp builds the native addons at install
  python3         # node-gyp's build-file generator (gyp)
  erofs-utils     # mkfs.erofs / fsck.erofs / dump.erofs: kernel-side checks of our bootstraps
  attr            # getfattr/setfattr for xattr fixtures
  mount           # mount/umount/losetup: kernel EROFS and overlayfs mounts in converter tests (priority required, not essential)
  busybox-static  # a static userland for sample images
  debootstrap     # Debian minbase trees for benchmarks and conversion tests
  docker-registry # a real OCI registry on loopback for integration tests
  apache2-utils   # htpasswd -B: bcrypt users for the registry's basic-auth tests
  openssl         # certificate of the registry tests' token server
  skopeo          # reference copier for checks and benchmarks
  umoci           # OCI image layout unpacker
  time            # GNU time: peak RSS in benchmarks
  liblz4-dev      # headers for the @nydus-ts/native N-API binding (built at npm install)
  libisal-dev     # ISA-L igzip: the native gzip inflater (2-3x zlib's speed) of @nydus-ts/native
  libzstd-dev     # zstd chunk compression of @nydus-ts/native (inline or on the thread pool)
  zlib1g-dev      # zlib for @nydus-ts/native's zran inflate (Z_BLOCK checkpoints, inflatePrime)
  lz4             # the lz4 tool, for interoperability tests
  zstd            # the zstd tool, for interoperability tests and zstd test layers
  containerd      # a private containerd: the peer converter of the convert benchmark, the snapshotter and e2e tests
  golang-github-containerd-containerd-dev # containerd 1.6's .proto files: the snapshotter's proto-compatibility test
  runc            # containerd's runtime dependency
  stargz-snapshotter # ctr-remote: `images convert --estargz`, the peer converter of the convert benchmark
  libfuse2        # libfuse.so.2, which fuse-native's prebuilt binding (nydusd-ts FUSE mounts) loads
  fuse            # fusermount: unmounting FUSE mounts (also stale ones after a crash)
)

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# node-gyp builds against this Node's installed headers (no download), then the npm
# dependencies are installed from the lock file, which stays unchanged.
source scripts/lib/node-gyp-env.sh
source scripts/lib/npm-deps.sh
use_installed_node_headers
install_npm_dependencies

# The native addon is built by node-gyp at install; rebuild it when its sources are newer (an
# existing checkout that pulled native changes without a lock-file change).
addon=packages/native/build/Release/nydus_native.node
if [ ! -f "$addon" ] || [ -n "$(find packages/native/binding.gyp packages/native/native -newer "$addon" -print -quit)" ]; then
  npm run install --workspace @nydus-ts/native
fi
