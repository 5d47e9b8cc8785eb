#!/usr/bin/env bash
# Runs `cargo test` with the given arguments, shows its output as it comes, and ends with
# one summary line over every test binary ("summary: N passed, N failed"), so the total
# is visible at the end of a long run. Exits with cargo's status.
set -uo pipefail
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
awk '/^test result: /{
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) passed += $i
         if ($(i+1) ~ /^failed/) failed += $i
         if ($(i+1) ~ /^ignored/) ignored += $i
       }
       binaries++
     }
     END {
       printf "\n%d test binaries; %d ignored\n", binaries, ignored
       printf "summary: %d passed, %d failed\n", passed, failed
     }' "$log"
exit "$status"
