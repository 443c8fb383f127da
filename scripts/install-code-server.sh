#!/usr/bin/env bash
# Installs code-server (= a real VS Code build with a Node extension host) for the extension-host tests,
# from the npm registry alone (no GitHub downloads), into a cache folder. Does nothing when already installed.
#
# usage: scripts/install-code-server.sh [DEST]
#   DEST defaults to $MERGE_STUDIO_CACHE/code-server-$VERSION, else ~/.cache/merge-studio/code-server-$VERSION.
#   Prints DEST as its last line. Needs `rg` (Debian: ripgrep), libkrb5-dev, and g++/make/python3 for node-pty.
#
# 4.100.3 (VS Code 1.100.3) is the last code-server whose engines.node accepts Node 20; the extension's
# engines.vscode must stay at ^1.100.0 or lower to load in it.
set -euo pipefail
VER=${CODE_SERVER_VERSION:-4.100.3}
CACHE=${MERGE_STUDIO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/merge-studio}
DEST=${1:-$CACHE/code-server-$VER}
BIN="$DEST/node_modules/.bin/code-server"

# A marker written only after a verified install: an interrupted install is redone, not trusted.
if [ -f "$DEST/.installed-$VER" ] && [ -x "$BIN" ]; then echo "$DEST"; exit 0; fi

command -v rg >/dev/null || { echo "install-code-server: ripgrep (rg) is missing: apt-get install -y ripgrep" >&2; exit 1; }
[ -e /usr/include/gssapi/gssapi.h ] || [ -e /usr/include/krb5.h ] \
  || echo "install-code-server: warning: libkrb5-dev seems missing; the kerberos module may fail to build" >&2

mkdir -p "$(dirname "$DEST")"
# Two concurrent runs (e.g. two terminals) must not install into the same folder at once.
exec 9>"$DEST.lock"
flock 9
if [ -f "$DEST/.installed-$VER" ] && [ -x "$BIN" ]; then echo "$DEST"; exit 0; fi

STAGE="$DEST.partial"
rm -rf "$STAGE"
mkdir -p "$STAGE/tmp"
# @vscode/ripgrep@1.15.11 (what VS Code 1.100 pins)'s postinstall downloads rg from GitHub unless it finds the
# release asset in $TMPDIR/vscode-ripgrep-cache-1.15.11/: seed that cache with the system's rg.
mkdir -p "$STAGE/tmp/rgseed" "$STAGE/tmp/vscode-ripgrep-cache-1.15.11"
cp "$(command -v rg)" "$STAGE/tmp/rgseed/rg"
tar czf "$STAGE/tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$STAGE/tmp/rgseed" rg
echo '{"name":"merge-studio-code-server","version":"0.0.0","private":true}' > "$STAGE/package.json"

# npm_config_unsafe_perm: code-server's postinstall refuses to run as root without it.
# npm_config_yes: node-pty's postinstall runs `npx node-gyp`, which must not stop to ask.
# The project's .npmrc must not apply here: run from the staging folder.
(cd "$STAGE" && TMPDIR="$STAGE/tmp" npm_config_unsafe_perm=true npm_config_yes=true \
  npm install "code-server@$VER" --no-audit --no-fund --no-save --foreground-scripts --loglevel=error >&2)

# Verify before marking: the binary must start and report the expected version.
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
