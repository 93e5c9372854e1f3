# Sourced by setup.sh (and its test): installs the npm dependencies exactly as package-lock.json
# pins them. `npm ci` never writes the lock file (`npm install` rewrites it whenever its npm
# version lays the file out differently, so a clone would be dirty after its own set-up); a lock
# that no longer matches the package.json files fails with a message instead of being rewritten.

# Runs in the project root; reinstalls only when the lock or a package.json changed since the
# last install.
install_npm_dependencies() {
  local stamp=node_modules/.setup-stamp want
  # The lock file and every package.json of the workspace (packages/*, apps/*, e2e, ...).
  want=$(find . -maxdepth 3 -name node_modules -prune -o \( -name package.json -o -name package-lock.json \) -print | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  if ! npm ci --no-audit --no-fund; then
    echo "setup: npm ci failed; if a package.json changed, run \`npm install\` to update package-lock.json and commit it" >&2
    return 1
  fi
  echo "$want" > "$stamp"
}
