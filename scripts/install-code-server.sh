#!/usr/bin/env bash
# Installs code-server (= a real VS Code build with a Node extension host) for the extension-host tests,
# from the npm registry alone (no GitHub downloads, no system packages), into a cache folder. Does nothing when
# already installed.
#
# usage: scripts/install-code-server.sh [DEST]
#   DEST defaults to $MERGE_STUDIO_CACHE/code-server-$VERSION, else ~/.cache/merge-studio/code-server-$VERSION.
#   Prints DEST as its last line. Needs only Node 20 with npm, and what node-gyp builds with (python3, make, g++:
#   on every Node machine; no system headers beyond Node's own).
#
# 4.100.3 (VS Code 1.100.3) is the last code-server whose engines.node accepts Node 20; the extension's
# engines.vscode must stay at ^1.100.0 or lower to load in it.
#
# What code-server's own postinstall would do (npm install in lib/vscode and lib/vscode/extensions, then three
# symlinks) is done here step by step, for two reasons:
#  - ripgrep: @vscode/ripgrep@1.15.11 (VS Code 1.100's pin) downloads rg from GitHub in its postinstall unless the
#    release asset is already in $TMPDIR/vscode-ripgrep-cache-1.15.11/. The asset is made from the rg binary that
#    @vscode/ripgrep-<platform>@1.18.0 ships inside its npm package.
#  - kerberos: its install script compiles against the system's Kerberos headers (Debian: libkrb5-dev). VS Code
#    loads it only for Negotiate proxy authentication, so it is installed but left unbuilt.
set -euo pipefail
VER=${CODE_SERVER_VERSION:-4.100.3}
RG_PACKAGE_VERSION=1.18.0
CACHE=${MERGE_STUDIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/merge-studio}
DEST=${1:-$CACHE/code-server-$VER}
BIN="$DEST/node_modules/.bin/code-server"

# A marker written only after a verified install: an interrupted install is redone, not trusted.
if [ -f "$DEST/.installed-$VER" ] && [ -x "$BIN" ]; then echo "$DEST"; exit 0; fi

mkdir -p "$(dirname "$DEST")"
# Two concurrent runs (e.g. two terminals) must not install into the same folder at once.
exec 9>"$DEST.lock"
flock 9
if [ -f "$DEST/.installed-$VER" ] && [ -x "$BIN" ]; then echo "$DEST"; exit 0; fi

STAGE="$DEST.partial"
rm -rf "$STAGE"
mkdir -p "$STAGE/tmp"
echo '{"name":"merge-studio-code-server","version":"0.0.0","private":true}' > "$STAGE/package.json"
export TMPDIR="$STAGE/tmp"
# The project's .npmrc must not apply here: every npm command runs inside the staging folder.
NPM_FLAGS=(--no-audit --no-fund --loglevel=error)
# node-gyp builds against the running Node's own headers (<prefix>/include/node), never downloads them.
if [ -z "${npm_config_nodedir:-}" ] && [ -z "$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' || true)" ]; then
  NODE_PREFIX=$(dirname "$(dirname "$(command -v node)")")
  [ -f "$NODE_PREFIX/include/node/node.h" ] && export npm_config_nodedir="$NODE_PREFIX"
fi

# rg's release name for this machine, as @vscode/ripgrep@1.15.11's postinstall spells it.
read -r PLATFORM ARCH < <(node -p 'process.platform + " " + process.arch')
case "$PLATFORM-$ARCH" in
  linux-x64) RG_TARGET=x86_64-unknown-linux-musl ;;
  linux-arm64) RG_TARGET=aarch64-unknown-linux-musl ;;
  darwin-arm64) RG_TARGET=aarch64-apple-darwin ;;
  darwin-x64) RG_TARGET=x86_64-apple-darwin ;;
  *) echo "install-code-server: no ripgrep package for $PLATFORM-$ARCH" >&2; exit 1 ;;
esac

(cd "$STAGE" && npm install "code-server@$VER" "@vscode/ripgrep-$PLATFORM-$ARCH@$RG_PACKAGE_VERSION" \
  --ignore-scripts --no-save "${NPM_FLAGS[@]}" >&2)
mkdir -p "$STAGE/tmp/vscode-ripgrep-cache-1.15.11"
tar czf "$STAGE/tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-$RG_TARGET.tar.gz" \
  -C "$STAGE/node_modules/@vscode/ripgrep-$PLATFORM-$ARCH/bin" rg

# Install scripts of every package that has one, except kerberos (see the header).
# npm_config_unsafe_perm: scripts run as root here. npm_config_yes: node-pty's script runs `npx node-gyp`.
rebuild_all_but_kerberos() {
  local pkgs
  pkgs=$(node -e '
    const lock = require(process.env.SHRINKWRAP || process.cwd() + "/npm-shrinkwrap.json");
    const names = Object.entries(lock.packages)
      .filter(([k, v]) => k.startsWith("node_modules/") && v.hasInstallScript && !v.dev && !k.endsWith("/kerberos"))
      .map(([k]) => k.slice("node_modules/".length));
    console.log(names.join(" "));')
  # shellcheck disable=SC2086  # one word per package
  [ -z "$pkgs" ] || npm_config_unsafe_perm=true npm_config_yes=true npm rebuild $pkgs --foreground-scripts "${NPM_FLAGS[@]}" >&2
}
CS="$STAGE/node_modules/code-server"
# code-server's own dependencies (argon2) are hoisted into the staging folder: rebuild them from there.
(cd "$STAGE" && cp "$CS/npm-shrinkwrap.json" "$STAGE/tmp/code-server-shrinkwrap.json" && \
  SHRINKWRAP="$STAGE/tmp/code-server-shrinkwrap.json" rebuild_all_but_kerberos)
(cd "$CS/lib/vscode" && npm install --omit=dev --ignore-scripts "${NPM_FLAGS[@]}" >&2 && rebuild_all_but_kerberos)
(cd "$CS/lib/vscode/extensions" && npm_config_unsafe_perm=true npm install --omit=dev --foreground-scripts "${NPM_FLAGS[@]}" >&2)
# The symlinks of code-server's postinstall.sh (VS Code looks for node_modules.asar, and for these bin scripts).
ln -sfn node_modules "$CS/lib/vscode/node_modules.asar"
case "$PLATFORM" in darwin) SUFFIX=darwin ;; *) SUFFIX=linux ;; esac
ln -sfn "code-$SUFFIX.sh" "$CS/lib/vscode/bin/remote-cli/code-server"
ln -sfn "browser-$SUFFIX.sh" "$CS/lib/vscode/bin/helpers/browser.sh"

# Verify before marking: the binary must start and report the expected version, and rg must run.
"$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg" --version >/dev/null \
  || { echo "install-code-server: ripgrep did not install" >&2; exit 1; }
got=$(XDG_DATA_HOME="$STAGE/tmp/xdg" XDG_CONFIG_HOME="$STAGE/tmp/xdg" "$STAGE/node_modules/.bin/code-server" \
  --version --config "$STAGE/tmp/cfg.yaml" --user-data-dir "$STAGE/tmp/ud" 2>/dev/null | grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+' || true)
case "$got" in
  "$VER"*) ;;
  *) echo "install-code-server: expected code-server $VER, got: ${got:-nothing}" >&2; exit 1 ;;
esac
rm -rf "$STAGE/tmp"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
touch "$DEST/.installed-$VER"
echo "$DEST"
