#!/usr/bin/env bash
# Makes a current Node.js and the pinned pnpm available, then installs the
# workspace's dependencies. Safe to run repeatedly; prints nothing on a warm
# machine except when something changes.
#
#   source scripts/bootstrap.sh   # puts node + pnpm on PATH for this shell
#
# The system Node is used when it is new enough (>= 22). Otherwise a pinned
# Node is installed from the npm registry's node-linux-<arch> package (it ships
# the official binary) into .tools/, which git ignores.
set -euo pipefail

CHAPERONE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_PIN="24.21.0"
NODE_MIN_MAJOR=22
PNPM_PIN="$(sed -n 's/.*"packageManager": *"pnpm@\([0-9.]*\)".*/\1/p' "$CHAPERONE_ROOT/package.json")"
TOOLS="$CHAPERONE_ROOT/.tools"

bootstrap_log() { printf 'bootstrap: %s\n' "$*" >&2; }
bootstrap_die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

fetch_npm_tarball() { # <package@version> <dest dir>
  local spec="$1" dest="$2" tmp
  command -v npm >/dev/null || bootstrap_die "npm is needed to fetch $spec (install Debian's npm or Node.js)"
  tmp="$(mktemp -d)"
  if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>"$tmp/err"); then
    cat "$tmp/err" >&2
    bootstrap_die "could not download $spec from the npm registry (is https://registry.npmjs.org reachable?)"
  fi
  mkdir -p "$tmp/x" && tar -xzf "$tmp"/*.tgz -C "$tmp/x"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$tmp/x/package" "$dest"
  rm -rf "$tmp"
}

NODE_BIN_DIR=""

ensure_node() {
  local sys
  sys="$(command -v node || true)"
  if [[ -n "$sys" && "$(node_major "$sys")" -ge $NODE_MIN_MAJOR && -z "${CHAPERONE_FORCE_PINNED_NODE:-}" ]]; then
    return
  fi
  local dir="$TOOLS/node-$NODE_PIN"
  if [[ ! -x "$dir/bin/node" ]]; then
    local arch
    case "$(uname -m)" in
      x86_64) arch=x64 ;; aarch64) arch=arm64 ;;
      *) bootstrap_die "no pinned Node for $(uname -m); install Node >= $NODE_MIN_MAJOR yourself" ;;
    esac
    local have="missing"
    [[ -n "$sys" ]] && have="$("$sys" -v 2>/dev/null || echo unknown)"
    bootstrap_log "system Node is $have (need >= $NODE_MIN_MAJOR); installing Node $NODE_PIN into .tools/ (one time)"
    fetch_npm_tarball "node-linux-$arch@$NODE_PIN" "$dir"
    chmod +x "$dir/bin/node"
  fi
  NODE_BIN_DIR="$dir/bin"
}

ensure_pnpm() {
  [[ -n "$PNPM_PIN" ]] || bootstrap_die "package.json has no packageManager pnpm@<version>"
  local dir="$TOOLS/pnpm-$PNPM_PIN"
  if [[ ! -f "$dir/bin/pnpm.cjs" ]]; then
    bootstrap_log "installing pnpm $PNPM_PIN into .tools/ (one time)"
    fetch_npm_tarball "pnpm@$PNPM_PIN" "$dir"
  fi
  mkdir -p "$TOOLS/bin"
  printf '#!/bin/sh\nexec node "%s/bin/pnpm.cjs" "$@"\n' "$dir" >"$TOOLS/bin/pnpm"
  chmod +x "$TOOLS/bin/pnpm"
  export PATH="$TOOLS/bin:$PATH"
}

deps_stamp() {
  (cd "$CHAPERONE_ROOT" && cat package.json ./*/package.json pnpm-workspace.yaml pnpm-lock.yaml 2>/dev/null; node -v) |
    sha256sum | cut -d' ' -f1
}

ensure_deps() {
  local stamp="$CHAPERONE_ROOT/node_modules/.chaperone-deps"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$(deps_stamp)" ]]; then return; fi
  bootstrap_log "installing workspace dependencies with pnpm"
  local frozen=()
  [[ -n "${CI:-}" ]] && frozen=(--frozen-lockfile)
  (cd "$CHAPERONE_ROOT" && pnpm install "${frozen[@]}" --reporter=append-only >&2) ||
    bootstrap_die "pnpm install failed (see above)"
  deps_stamp >"$stamp"
}

# Both downloads use the system's npm as it is configured (registry, CA
# certificates); the pinned Node goes on PATH only afterwards.
ensure_node
ensure_pnpm
[[ -z "$NODE_BIN_DIR" ]] || export PATH="$NODE_BIN_DIR:$PATH"
[[ -n "${CHAPERONE_SKIP_INSTALL:-}" ]] || ensure_deps
