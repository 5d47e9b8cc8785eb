#!/usr/bin/env bash
# Installs the command-line tools the sidecar's tests and figures use, from Debian's
# packages: promtool (package `prometheus`, for `promtool check metrics`) and wrk (the
# loopback load generator of `make load-sidecar`). Skips what is already on PATH.
set -euo pipefail

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -eq 0 ]; then
  echo ">> tools: promtool and wrk present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "tools: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
command -v apt-get >/dev/null || { echo "tools: apt-get not found; install ${missing[*]} (promtool, wrk) by hand" >&2; exit 1; }
echo ">> tools: apt-get install ${missing[*]}"
"${sudo[@]}" apt-get update -qq
# --no-install-recommends: only the binaries, not the node exporter and friends. Where a
# service manager runs, the package may start a Prometheus server; the tests do not need it.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
command -v promtool >/dev/null && command -v wrk >/dev/null
echo ">> tools: $(promtool --version 2>&1 | head -1); $(wrk --version 2>&1 | head -1)"
