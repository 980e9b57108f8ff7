#!/usr/bin/env bash
# Speed and size of `ccvault export --format parquet` (issue 14): one
# simulated corpus (`simulate --events N --agents 400 --no-quirks --seed 5`,
# as the other benchmarks) is imported and its projections built; then,
# RUNS times, three steps take turns: a copy of the raw NDJSON corpus with
# fsync (`dd conv=fsync`, the floor of any export that writes the events
# durably), the NDJSON export of the events (`export`, the same records
# to a file, not synced) and a full Parquet export into a fresh directory
# (synced); one incremental export with nothing new follows each. Prints a
# markdown table: medians of the wall times, the events table's own time
# and rate (from the export's per-table timing), the sizes of the tables
# against the raw NDJSON corpus, and the load average before and after.
#
# Usage: scripts/bench-parquet.sh [EVENTS]          (default 1000000)
# Environment:
#   BENCH_DIR  where corpus, archive and exports go (default: a new temporary
#              directory, deleted at the end unless KEEP=1)
#   RUNS       runs of each timed step (default 3)
#   CCVAULT    the ccvault binary (default: cargo build --release, then
#              target/release/ccvault)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

events=${1:-1000000}
runs=${RUNS:-3}
say() { echo "bench-parquet: $*" >&2; }
die() {
  say "$*"
  exit 1
}
[[ $events =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer, got '$events'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"

# shellcheck source=scripts/lib/duckdb.sh
. scripts/lib/duckdb.sh
work_dir "${BENCH_DIR:-}" ccvault-bench-parquet
cleanup() {
  local status=$?
  if [[ -n $created_dir && ${KEEP:-0} != 1 ]]; then
    rm -rf "$created_dir"
  elif [[ -d $work ]]; then
    rm -rf "$work/export" "$work/export.ndjson" "$work/copy.ndjson" "$work/cpu.txt" "$work/export.log"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ccvault_binary

now() { date +%s%N; }
secs() { awk -v ns=$(($2 - $1)) 'BEGIN { printf "%.3f\n", ns / 1e9 }'; }

corpus=$work/events.ndjson
data=$work/data
if [[ ! -s $corpus ]]; then
  say "simulating $events events"
  "$ccvault" -q simulate --events "$events" --agents 400 --no-quirks --seed 5 --out "$corpus.tmp"
  mv "$corpus.tmp" "$corpus"
fi
if [[ ! -d $data ]]; then
  say "importing and building the projections"
  "$ccvault" -q --data-dir "$data" import "$corpus"
  "$ccvault" -q --data-dir "$data" rebuild
fi
records=$("$ccvault" --data-dir "$data" stats --format json | sed -E 's/.*"events":([0-9]+).*/\1/')

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# User + system CPU seconds of the last step timed with /usr/bin/time.
cpu() { awk '{ printf "%.2f\n", $1 + $2 }' "$work/cpu.txt"; }
ndjson_cpu=() parquet_cpu=() parquet_rss=()
copy=() ndjson=() parquet=() events_table=() legs_table=() spans_table=() noop=()
for ((r = 1; r <= runs; r++)); do
  say "round $r of $runs"
  rm -f "$work/copy.ndjson"
  # Each step starts from a quiet disk: without it the Parquet export ran
  # while the file system still wrote back or discarded the NDJSON export
  # just deleted (490 MB at 1M), ~0.15 s of its events step at 1M
  # (docs/BENCHMARKS.md, "The benchmark's steps from a quiet disk").
  sync
  t0=$(now)
  dd if="$corpus" of="$work/copy.ndjson" bs=4M conv=fsync status=none
  copy+=("$(secs "$t0" "$(now)")")
  rm -f "$work/copy.ndjson"
  sync
  t0=$(now)
  /usr/bin/time -f '%U %S' -o "$work/cpu.txt" "$ccvault" --data-dir "$data" export >"$work/export.ndjson"
  ndjson+=("$(secs "$t0" "$(now)")")
  ndjson_cpu+=("$(cpu)")
  # Only its size is needed: at 10M events it is as large as the corpus.
  exported=$(stat -c %s "$work/export.ndjson")
  rm -f "$work/export.ndjson"
  rm -rf "$work/export"
  sync
  t0=$(now)
  /usr/bin/time -f '%U %S %M' -o "$work/cpu.txt" "$ccvault" --data-dir "$data" export --format parquet --out "$work/export" 2>"$work/export.log" ||
    die "the Parquet export failed: $(cat "$work/export.log")"
  parquet+=("$(secs "$t0" "$(now)")")
  parquet_cpu+=("$(cpu)")
  parquet_rss+=("$(awk '{ print $3 }' "$work/cpu.txt")")
  table_secs() { awk -v t="$1" '$1 == t { print $NF }' "$work/export.log" | tr -d 's'; }
  events_table+=("$(table_secs events)")
  legs_table+=("$(table_secs interactions)")
  spans_table+=("$(table_secs agent-states)")
  t0=$(now)
  "$ccvault" -q --data-dir "$data" export --format parquet --out "$work/export" --since-last
  noop+=("$(secs "$t0" "$(now)")")
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

raw=$(stat -L -c %s "$corpus")
size() { du -sb "$work/export/$1" | cut -f1; }
ev=$(size events) legs=$(size interactions) spans=$(size agent-states)
m_cp=$(printf '%s\n' "${copy[@]}" | median)
m_nd=$(printf '%s\n' "${ndjson[@]}" | median)
m_pq=$(printf '%s\n' "${parquet[@]}" | median)
m_nd_cpu=$(printf '%s\n' "${ndjson_cpu[@]}" | median)
m_pq_cpu=$(printf '%s\n' "${parquet_cpu[@]}" | median)
m_pq_rss=$(printf '%s\n' "${parquet_rss[@]}" | median)
m_ev=$(printf '%s\n' "${events_table[@]}" | median)
m_legs=$(printf '%s\n' "${legs_table[@]}" | median)
m_spans=$(printf '%s\n' "${spans_table[@]}" | median)
m_noop=$(printf '%s\n' "${noop[@]}" | median)
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%\047.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cat <<EOF
| $records events ($(ratio "$raw" 1048576 | cut -d. -f1) MiB NDJSON) | median of $runs | |
|---|---|---|
| copy of the NDJSON corpus + fsync (baseline) | ${m_cp} s | $(rate "$records" "$m_cp") events/s |
| \`export\` NDJSON to a file (baseline) | ${m_nd} s (CPU ${m_nd_cpu} s) | $(rate "$records" "$m_nd") events/s |
| \`export --format parquet\`, all three tables | ${m_pq} s (CPU ${m_pq_cpu} s, peak RSS $(awk -v k="$m_pq_rss" 'BEGIN { printf "%.0f", k / 1024 }') MiB) | $(ratio "$m_pq" "$m_nd")× the NDJSON export, $(ratio "$m_pq" "$m_cp")× the copy |
| of it the events table (log scan and parse included) | ${m_ev} s | **$(rate "$records" "$m_ev") events/s** |
| of it interactions / agent-states | ${m_legs} s / ${m_spans} s | |
| \`--since-last\` with nothing new | ${m_noop} s | |
| events table size | $(ratio "$ev" 1048576) MiB | **$(ratio "$ev" "$raw")× the raw NDJSON** ($(ratio "$ev" "$exported")× the NDJSON export) |
| interactions / agent-states size | $(ratio "$legs" 1048576) MiB / $(ratio "$spans" 1048576) MiB | |

Runs: copy ${copy[*]}; NDJSON export ${ndjson[*]}; Parquet export ${parquet[*]} (events table ${events_table[*]}); \`--since-last\` ${noop[*]} (s). Load average before ${load_before}, after ${load_after}.
EOF
