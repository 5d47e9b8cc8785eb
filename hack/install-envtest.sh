#!/usr/bin/env bash
# Builds the real Kubernetes binaries that the tests and the demo run: the control
# plane (kube-apiserver, kube-controller-manager, kube-scheduler), the node
# (kubelet, kube-proxy) and kubectl from one pinned Kubernetes release, and etcd,
# all from the Go module proxy (no registry ships them here).
#
# The binaries land in a cache folder keyed by version, outside the clone:
#   ${OUTBAND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outband}/k8s-<version>/
# and the build is skipped when they are already there.
#
# Why a throwaway module: `go install k8s.io/kubernetes/cmd/...` is refused because
# k8s.io/kubernetes replaces its staging modules with local paths. A tiny main module
# that requires k8s.io/kubernetes and pins every staging module to the matching
# v0.x release builds the same code (kubernetes/kubernetes#79384).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
CACHE_ROOT="${OUTBAND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outband}"
OUT="$CACHE_ROOT/k8s-$KUBE_VERSION"
ETCD_OUT="$CACHE_ROOT/etcd-$ETCD_VERSION"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
say() { printf '==> %s\n' "$*" >&2; }

KUBE_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
need_kube=0
for b in $KUBE_BINARIES; do
  [ -x "$OUT/$b" ] || need_kube=1
done
need_etcd=0
[ -x "$ETCD_OUT/etcd" ] || need_etcd=1

report() {
  say "kube-apiserver: $("$OUT/kube-apiserver" --version) ($OUT)"
  say "etcd: $("$ETCD_OUT/etcd" --version | head -1) ($ETCD_OUT)"
}

if [ "$need_kube" = 0 ] && [ "$need_etcd" = 0 ]; then
  say "control-plane binaries already cached"
  report
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ "$need_kube" = 1 ]; then
  minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  staging_version="v0.${KUBE_VERSION#v1.}"
  say "Kubernetes $KUBE_VERSION: resolving staging modules (first run downloads ~0.5 GB of modules)"
  mkdir -p "$work/kube"
  cd "$work/kube"
  gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [ -f "$gomod" ] || { echo "could not download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
  go_line="$(grep -m1 '^go ' "$gomod")"
  godebug="$(grep -m1 '^godebug ' "$gomod" || true)"
  {
    echo "module outband.dev/envtest-build"
    echo
    echo "$go_line"
    [ -n "$godebug" ] && echo "$godebug"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    grep -E '=> \./staging/src/' "$gomod" | awk '{print $1}' | sort -u | while read -r m; do
      echo "replace $m => $m $staging_version"
    done
  } > go.mod
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  say "Kubernetes $KUBE_VERSION: $(grep -c '^replace' go.mod) staging modules pinned to $staging_version; go mod tidy"
  go mod tidy -e >/dev/null 2>&1 || true
  go get "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$OUT.partial"
  # Keep what an earlier version of this script already built.
  for b in $KUBE_BINARIES; do
    if [ -x "$OUT/$b" ] && [ ! -x "$OUT.partial/$b" ]; then cp "$OUT/$b" "$OUT.partial/$b"; fi
  done
  for b in $KUBE_BINARIES; do
    if [ -x "$OUT.partial/$b" ]; then continue; fi
    say "Kubernetes $KUBE_VERSION: building $b (several minutes on 2 cores)"
    start=$(date +%s)
    go build -trimpath -ldflags "-s -w $ldflags" -o "$OUT.partial/$b" "k8s.io/kubernetes/cmd/$b"
    say "built $b in $(( $(date +%s) - start ))s"
  done
  rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
fi

if [ "$need_etcd" = 1 ]; then
  say "etcd $ETCD_VERSION: building"
  mkdir -p "$work/etcd"
  cd "$work/etcd"
  go mod init outband.dev/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  mkdir -p "$ETCD_OUT.partial"
  start=$(date +%s)
  go build -trimpath -ldflags "-s -w" -o "$ETCD_OUT.partial/etcd" go.etcd.io/etcd/server/v3
  say "built etcd in $(( $(date +%s) - start ))s"
  rm -rf "$ETCD_OUT"; mv "$ETCD_OUT.partial" "$ETCD_OUT"
fi

report
