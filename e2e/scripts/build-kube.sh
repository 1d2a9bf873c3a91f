#!/usr/bin/env bash
# build-kube.sh — build a real kube-apiserver and kube-controller-manager
# (Kubernetes v1.20.2, from Debian bookworm's `kubernetes` source package) and
# cache the two binaries outside the repository. Also makes sure Debian's etcd
# (etcd-server, /usr/bin/etcd) is installed.
#
# Usage: build-kube.sh
#   stdout (last line): the cache directory holding kube-apiserver and
#                       kube-controller-manager. Everything else goes to stderr.
#
# Environment:
#   CHAPERONE_CACHE_DIR       cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/chaperone)
#   CHAPERONE_KUBE_BUILD_DIR  scratch dir for the build (default /var/tmp/kube-build)
#   CHAPERONE_KEEP_BUILD=1    keep the scratch source tree and Go build cache after success
#
# The recipe: apt-get source kubernetes; replace the vendored
# github.com/modern-go/reflect2 1.0.1 (crashes under Go >= 1.18) with Debian's
# 1.0.2; `make gen_openapi`; then upstream's hack/make-rules/build.sh (GOPATH
# mode, CGO_ENABLED=0, -s -w, trimmed paths, version info from the release
# tarball so /version reports v1.20.2). Bump RECIPE when any of this changes.
#
# Idempotent: a valid cache returns at once without touching apt. The build is
# serialised with flock and lands atomically (temp dir + rename), so an
# interrupted build never leaves a half-filled cache.
set -euo pipefail

KUBE_VERSION=v1.20.2
RECIPE=1
SRC_PKG=kubernetes
BUILD_MINUTES=6 # measured: ~5-6 min cold on 2 cores (apt + source + openapi + go build)
REQUIRED_FREE_KB=$((3 * 1024 * 1024))
BUILD_PKGS=(golang-go dpkg-dev make rsync jq golang-github-modern-go-reflect2-dev)
RUNTIME_PKGS=(etcd-server)
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

CLEANUP=()
cleanup() {
  local f
  for f in "${CLEANUP[@]}"; do rm -rf "$f"; done
}
trap cleanup EXIT

log() { printf 'control plane: %s\n' "$*" >&2; }
die() {
  printf 'control plane: ERROR: %s\n' "$*" >&2
  exit 1
}

if [[ -z "${HOME:-}" ]]; then
  HOME=$(getent passwd "$(id -u)" | cut -d: -f6 || true)
  HOME=${HOME:-/tmp}
  export HOME
fi

ARCH=$(uname -m)
KEY=$(printf '%s|recipe=%s|%s' "$KUBE_VERSION" "$RECIPE" "$ARCH" | sha256sum | cut -c1-8)
CACHE_ROOT="${CHAPERONE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chaperone}"
CACHE_DIR="$CACHE_ROOT/kube/$KUBE_VERSION-$KEY"
BUILD_DIR="${CHAPERONE_KUBE_BUILD_DIR:-/var/tmp/kube-build}"

# ---------------------------------------------------------------- helpers

# binaries_ok DIR: both binaries exist, run, and report the expected version.
binaries_ok() {
  local dir=$1 b out
  for b in kube-apiserver kube-controller-manager; do
    [[ -x "$dir/$b" ]] || return 1
    out=$("$dir/$b" --version 2>/dev/null) || return 1
    [[ "$out" == "Kubernetes $KUBE_VERSION" ]] || return 1
  done
}

pkg_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

SUDO=()
need_root() { # need_root "what needs root" "how to do it by hand"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    die "$1 needs root, and this is not root and has no passwordless sudo. Run this script as root (or with passwordless sudo), or $2"
  fi
}

# run_apt ARGS...: apt-get as root, non-interactive, quiet unless it fails.
APT_LOG=""
run_apt() {
  if [[ -z "$APT_LOG" ]]; then
    APT_LOG=$(mktemp "${TMPDIR:-/tmp}/chaperone-apt.XXXXXX")
    CLEANUP+=("$APT_LOG")
  fi
  if "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 "$@" \
    </dev/null >"$APT_LOG" 2>&1; then
    return 0
  fi
  echo "----- apt-get $* (last 25 lines) -----" >&2
  tail -n 25 "$APT_LOG" >&2 || true
  return 1
}

APT_UPDATED=0
apt_update() {
  log "apt-get update"
  run_apt update ||
    die "apt-get update failed (is the Debian archive reachable?). Check /etc/apt/sources.list.d/ and the network."
  APT_UPDATED=1
}

ensure_pkgs() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: this needs a Debian bookworm machine. Missing packages: ${missing[*]}"
  need_root "installing packages (${missing[*]})" "install these packages first: apt-get install --no-install-recommends ${missing[*]}"
  log "installing missing packages: ${missing[*]}"
  local args=(-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
    install --no-install-recommends "${missing[@]}")
  if ! run_apt "${args[@]}"; then
    # Stale or empty package lists are the usual cause: update once and retry.
    log "retrying after apt-get update"
    if ((APT_UPDATED)) || ! { apt_update && run_apt "${args[@]}"; }; then
      die "apt-get install ${missing[*]} failed (see above). Fix apt, or install them by hand: apt-get install ${missing[*]}"
    fi
  fi
  for p in "${missing[@]}"; do
    pkg_installed "$p" || die "package $p is still not installed after apt-get install"
  done
}

ensure_etcd() {
  if [[ ! -x /usr/bin/etcd ]] || ! pkg_installed etcd-server; then
    ensure_pkgs "${RUNTIME_PKGS[@]}"
  fi
  [[ -x /usr/bin/etcd ]] || die "/usr/bin/etcd missing even though etcd-server is installed"
}

have_deb_src() {
  local out
  out=$(apt-cache showsrc "$SRC_PKG" 2>/dev/null) || return 1
  [[ $'\n'"$out" == *$'\n'"Package: $SRC_PKG"$'\n'* ]]
}

# Add a deb-src twin of the Debian archive entries, then apt-get update.
ensure_deb_src() {
  have_deb_src && return 0
  need_root "enabling deb-src entries in apt" "add a deb-src entry for the Debian archive (e.g. /etc/apt/sources.list.d/chaperone-src.sources: a copy of debian.sources with 'Types: deb-src') and run apt-get update"
  local deb822=/etc/apt/sources.list.d/debian.sources
  if [[ -f "$deb822" ]]; then
    local dst=/etc/apt/sources.list.d/chaperone-src.sources
    if [[ ! -f "$dst" ]]; then
      log "adding deb-src entries: $dst (same URIs/Suites/Components as $deb822)"
      sed -E 's/^Types:.*$/Types: deb-src/' "$deb822" | "${SUDO[@]}" tee "$dst.tmp" >/dev/null
      "${SUDO[@]}" mv -f "$dst.tmp" "$dst"
    fi
  elif [[ -f /etc/apt/sources.list ]] && grep -qE '^deb ' /etc/apt/sources.list; then
    local dst=/etc/apt/sources.list.d/chaperone-src.list
    if [[ ! -f "$dst" ]]; then
      log "adding deb-src entries: $dst (mirroring /etc/apt/sources.list)"
      grep -E '^deb ' /etc/apt/sources.list | sed -E 's/^deb /deb-src /' | "${SUDO[@]}" tee "$dst.tmp" >/dev/null
      "${SUDO[@]}" mv -f "$dst.tmp" "$dst"
    fi
  else
    die "cannot find the Debian apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) to add deb-src entries to"
  fi
  apt_update
  have_deb_src || die "apt still has no source package '$SRC_PKG' after adding deb-src entries. Add a deb-src line for Debian bookworm main and run apt-get update."
}

# ---------------------------------------------------------------- fast path

if binaries_ok "$CACHE_DIR"; then
  ensure_etcd
  log "using cached kube-apiserver $KUBE_VERSION from $CACHE_DIR"
  printf '%s\n' "$CACHE_DIR"
  exit 0
fi

# ---------------------------------------------------------------- build

mkdir -p "$CACHE_ROOT/kube" || die "cannot create cache dir $CACHE_ROOT/kube (set CHAPERONE_CACHE_DIR to a writable place)"
exec 8>"$CACHE_ROOT/kube/.build-$KUBE_VERSION-$KEY.lock"
if ! flock -n 8; then
  log "another build-kube.sh is building into $CACHE_DIR; waiting for it"
  flock 8
fi
if binaries_ok "$CACHE_DIR"; then # built by whoever held the lock
  ensure_etcd
  log "using cached kube-apiserver $KUBE_VERSION from $CACHE_DIR"
  printf '%s\n' "$CACHE_DIR"
  exit 0
fi

START=$(date +%s)
log "no cached kube-apiserver $KUBE_VERSION in $CACHE_DIR; building it from Debian's '$SRC_PKG' source package"
log "this one-time build usually takes ~$BUILD_MINUTES minutes on 2 cores (later runs use the cache)"

command -v apt-get >/dev/null 2>&1 ||
  die "apt-get not found: this needs Debian bookworm (packages: ${BUILD_PKGS[*]} ${RUNTIME_PKGS[*]})"

mkdir -p "$BUILD_DIR" || die "cannot create scratch dir $BUILD_DIR (set CHAPERONE_KUBE_BUILD_DIR)"
exec 9>"$BUILD_DIR/.lock"
if ! flock -n 9; then
  log "scratch dir $BUILD_DIR is in use by another build; waiting"
  flock 9
fi

avail_kb=$(df -Pk "$BUILD_DIR" | awk 'NR==2 {print $4}')
if [[ -n "$avail_kb" ]] && ((avail_kb < REQUIRED_FREE_KB)); then
  die "only $((avail_kb / 1024)) MB free in $BUILD_DIR; the build needs ~3 GB. Free some space or set CHAPERONE_KUBE_BUILD_DIR to a bigger disk."
fi

log "step 1/5: apt packages (${BUILD_PKGS[*]} ${RUNTIME_PKGS[*]})"
ensure_pkgs "${BUILD_PKGS[@]}" "${RUNTIME_PKGS[@]}"
ensure_etcd

# Debian's Go (1.19), not whatever else may be on PATH.
export PATH="/usr/lib/go/bin:$PATH"
command -v go >/dev/null 2>&1 || die "go not found after installing golang-go"
[[ -d "$REFLECT2_SRC" ]] || die "$REFLECT2_SRC missing (package golang-github-modern-go-reflect2-dev)"

SRC_STAMP="$BUILD_DIR/.src-ready-r$RECIPE"
SRC_DIR=""
if [[ -f "$SRC_STAMP" ]]; then
  SRC_DIR=$(cat "$SRC_STAMP")
  [[ -d "$SRC_DIR" ]] || SRC_DIR=""
fi
if [[ -z "$SRC_DIR" ]]; then
  log "step 2/5: fetching the '$SRC_PKG' source package (~34 MB download, ~300 MB unpacked) into $BUILD_DIR"
  ensure_deb_src
  rm -f "$BUILD_DIR"/.src-ready-*
  rm -rf "$BUILD_DIR/src"
  mkdir -p "$BUILD_DIR/src"
  apt_source() { (cd "$BUILD_DIR/src" && apt-get -q source "$SRC_PKG" </dev/null >"$BUILD_DIR/apt-source.log" 2>&1); }
  fetched=0
  apt_source && fetched=1
  if ((fetched == 0)); then
    # A 404 means stale package lists (a newer Debian revision replaced the old one): update once, retry.
    if ((APT_UPDATED == 0)) && grep -q '404' "$BUILD_DIR/apt-source.log" 2>/dev/null; then
      log "apt-get source got 404 (stale package lists); retrying after apt-get update"
      need_root "apt-get update" "run apt-get update"
      apt_update
      rm -rf "$BUILD_DIR/src" && mkdir -p "$BUILD_DIR/src"
      apt_source && fetched=1
    fi
    if ((fetched == 0)); then
      tail -n 20 "$BUILD_DIR/apt-source.log" >&2 || true
      die "apt-get source $SRC_PKG failed (network or deb-src problem, log above; full log: $BUILD_DIR/apt-source.log)"
    fi
  fi
  SRC_DIR=""
  for d in "$BUILD_DIR/src/$SRC_PKG"-*/; do [[ -d "$d" ]] && SRC_DIR=${d%/}; done
  [[ -n "$SRC_DIR" && -f "$SRC_DIR/hack/lib/version.sh" ]] || die "unexpected layout of the unpacked source in $BUILD_DIR/src"
  grep -q "tag: $KUBE_VERSION'" "$SRC_DIR/hack/lib/version.sh" ||
    die "the '$SRC_PKG' source package in apt is not Kubernetes $KUBE_VERSION ($(basename "$SRC_DIR")); update this script"

  log "step 3/5: replacing vendored github.com/modern-go/reflect2 1.0.1 with Debian's 1.0.2 (1.0.1 crashes under Go >= 1.18)"
  rm -rf "$SRC_DIR/vendor/github.com/modern-go/reflect2"
  cp -rL "$REFLECT2_SRC" "$SRC_DIR/vendor/github.com/modern-go/reflect2"
  printf '%s\n' "$SRC_DIR" >"$SRC_STAMP"
else
  log "step 2-3/5: reusing unpacked source in $SRC_DIR"
fi

BUILD_LOG="$BUILD_DIR/build.log"
: >"$BUILD_LOG"
build_env=(env -u GOFLAGS -u GOOS -u GOARCH -u GOBIN -u GOROOT -u KUBE_GIT_VERSION_FILE
  GO111MODULE=off CGO_ENABLED=0 GOPROXY=off GOTOOLCHAIN=local
  SOURCE_DATE_EPOCH="$(cd "$SRC_DIR" && dpkg-parsechangelog -STimestamp 2>/dev/null || echo 1610496000)")
run_logged() {
  if ! (cd "$SRC_DIR" && "${build_env[@]}" "$@") </dev/null >>"$BUILD_LOG" 2>&1; then
    echo "----- last 40 lines of $BUILD_LOG -----" >&2
    tail -n 40 "$BUILD_LOG" >&2 || true
    rm -f "$SRC_STAMP" # next run starts from a fresh source tree
    die "'$*' failed in $SRC_DIR (full log: $BUILD_LOG)"
  fi
}

log "step 4/5: generating OpenAPI definitions (make gen_openapi, ~30 s)"
run_logged make gen_openapi

log "step 5/5: go build cmd/kube-apiserver cmd/kube-controller-manager (the slow part, ~5 min; log: $BUILD_LOG)"
run_logged hack/make-rules/build.sh cmd/kube-apiserver cmd/kube-controller-manager

OUT_BIN="$SRC_DIR/_output/local/bin/linux/$(cd "$SRC_DIR" && go env GOARCH)"
[[ -x "$OUT_BIN/kube-apiserver" ]] || OUT_BIN="$SRC_DIR/_output/bin"
binaries_ok "$OUT_BIN" || die "built binaries in $OUT_BIN are missing or do not report $KUBE_VERSION (log: $BUILD_LOG)"

# Land atomically: stage next to the cache dir (same filesystem), then rename.
TMP_DIR=$(mktemp -d "$CACHE_ROOT/kube/.tmp-$KUBE_VERSION-$KEY.XXXXXX")
CLEANUP+=("$TMP_DIR")
cp "$OUT_BIN/kube-apiserver" "$OUT_BIN/kube-controller-manager" "$TMP_DIR/"
cat >"$TMP_DIR/BUILD-INFO" <<EOF
kube_version=$KUBE_VERSION
recipe=$RECIPE
key=$KEY
source=$(basename "$SRC_DIR")
go=$(go version)
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
chmod 755 "$TMP_DIR" "$TMP_DIR/kube-apiserver" "$TMP_DIR/kube-controller-manager"
binaries_ok "$TMP_DIR" || die "staged binaries in $TMP_DIR do not run"
rm -rf "$CACHE_DIR" # a broken leftover (the valid case returned above)
mv -T "$TMP_DIR" "$CACHE_DIR"

if [[ "${CHAPERONE_KEEP_BUILD:-}" == 1 ]]; then
  log "keeping scratch tree $SRC_DIR (CHAPERONE_KEEP_BUILD=1)"
else
  log "removing scratch tree under $BUILD_DIR (set CHAPERONE_KEEP_BUILD=1 to keep it)"
  rm -f "$SRC_STAMP"
  chmod -R u+w "$BUILD_DIR/src" 2>/dev/null || true
  rm -rf "$BUILD_DIR/src"
fi

log "built kube-apiserver and kube-controller-manager $KUBE_VERSION in $(( ($(date +%s) - START + 30) / 60 )) min -> $CACHE_DIR"
printf '%s\n' "$CACHE_DIR"
