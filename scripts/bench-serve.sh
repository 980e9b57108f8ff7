#!/usr/bin/env bash
# The live wallboard under load (issue 16): from durable to on screen at
# RATE events/s, with one and with 100 SSE clients beside a real headless
# Chromium. Runs bin/ccvault/benches/serve.rs (the optimized binary, a real
# mosquitto, `ccvault ingest mqtt --serve`); prints one markdown table.
#
# Usage: scripts/bench-serve.sh [RUNS]                  (default 1)
# Environment:
#   BENCH_DIR   where the archive and logs go (default: a new temporary
#               directory, deleted at the end unless KEEP=1)
#   RATE        events/s published (default 1000)
#   SECONDS_PER_PHASE  how long each phase publishes (default 20)
#
# Needs mosquitto, chromium and chromium-driver (scripts/test.sh installs
# them when root).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-1}
bench_dir=${BENCH_DIR:-$(mktemp -d)}
if [ -z "${BENCH_DIR:-}" ] && [ "${KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$bench_dir"' EXIT
fi
export PATH="$PATH:/usr/sbin"
echo "bench-serve: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg), $(chromium --version 2>/dev/null || echo 'chromium ?'), $(mosquitto -h 2>/dev/null | head -1)"
for run in $(seq 1 "$runs"); do
  echo "run $run of $runs (load $(cut -d' ' -f1-3 /proc/loadavg))"
  CCVAULT_BENCH_DIR="$bench_dir" \
    CCVAULT_BENCH_RATE="${RATE:-1000}" \
    CCVAULT_BENCH_SECONDS="${SECONDS_PER_PHASE:-20}" \
    cargo bench --locked -p ccvault --bench serve
done
