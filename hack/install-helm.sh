#!/usr/bin/env bash
# Builds Helm from the Go module proxy (no registry reachable here ships it) into a cache
# folder keyed by version, outside the clone:
#   ${OUTBAND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outband}/helm-<version>/helm
# and skips the build when the binary is already there.
#
# `go install helm.sh/helm/v3/cmd/helm@<version>` is tried first; when the go command refuses
# it (a module with replace directives cannot be installed that way), a throwaway main
# module that requires Helm builds the same package.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${OUTBAND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outband}"
OUT="$CACHE_ROOT/helm-$HELM_VERSION"
major="${HELM_VERSION%%.*}"
module="helm.sh/helm/$major"

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
say() { printf '==> %s\n' "$*" >&2; }

if [ -x "$OUT/helm" ]; then
  say "helm already cached: $OUT/helm ($("$OUT/helm" version --short))"
  exit 0
fi
command -v go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }

ldflags="-s -w -X $module/internal/version.version=$HELM_VERSION -X $module/internal/version.gitTreeState=clean"
mkdir -p "$OUT.partial"
start=$(date +%s)
say "helm $HELM_VERSION: building from the Go module proxy (a few minutes on 2 cores)"
if ! GOBIN="$OUT.partial" go install -trimpath -ldflags "$ldflags" "$module/cmd/helm@$HELM_VERSION"; then
  say "go install refused; building through a throwaway module"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  go mod init outband.dev/helm-build >/dev/null 2>&1
  go get "$module@$HELM_VERSION" >/dev/null
  go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/helm" "$module/cmd/helm"
fi
say "built helm in $(( $(date +%s) - start ))s"
rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
say "helm: $("$OUT/helm" version --short)"
