#!/usr/bin/env bash
# Requests/s of the sidecar on loopback (see sidecar/examples/load.rs): builds the release
# binary, then drives it with wrk for a warm cache, 10,000 distinct tokens, and no cache.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"
"$CARGO" build --release -q -p outband-sidecar --bin outband-sidecar
"$CARGO" run --release -q -p outband-sidecar --example load -- "${CARGO_TARGET_DIR:-target}/release/outband-sidecar"
