# Sourced by setup.sh (and its test): points node-gyp at the headers of the Node that runs it, so
# that native addons build from the installed headers instead of downloading a header tarball.
# Node packages (nodesource's, Debian's libnode-dev) put them in <prefix>/include/node.

# Prints the prefix whose include/node holds this Node's headers; nothing when there is none.
node_headers_dir() {
  local prefix
  prefix=$(node -p 'require("node:path").resolve(process.execPath, "..", "..")')
  if [ -f "$prefix/include/node/node_api.h" ] && [ -f "$prefix/include/node/common.gypi" ]; then
    echo "$prefix"
  fi
}

# Exports npm_config_nodedir (node-gyp's --nodedir) unless the caller already chose one.
use_installed_node_headers() {
  if [ -n "${npm_config_nodedir:-}" ]; then return 0; fi
  local dir
  dir=$(node_headers_dir)
  if [ -n "$dir" ]; then
    export npm_config_nodedir="$dir"
  else
    echo "setup: no headers of node $(node -v) under its prefix (include/node/node_api.h); node-gyp will try to download them" >&2
  fi
}
