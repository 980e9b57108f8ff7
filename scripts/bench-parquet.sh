#!/usr/bin/env bash
# Speed and size of `ccvault export --format parquet` (issue 14): one
# simulated corpus is imported and its projections built; then, RUNS times,
# the NDJSON export of the events (the baseline, the same records to
# stdout) and a full Parquet export into a fresh directory take turns, and
# one incremental export with nothing new follows. Prints a markdown table:
# medians of the wall times, the events table's own time and rate (from the
# export's per-table timing), the sizes of the tables against the raw
# NDJSON corpus.
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

created_dir=""
if [[ -n ${BENCH_DIR:-} ]]; then
  mkdir -p "$BENCH_DIR"
  work=$(cd "$BENCH_DIR" && pwd)
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/ccvault-bench-parquet.XXXXXX")
  created_dir=$work
fi
cleanup() {
  local status=$?
  if [[ -n $created_dir && ${KEEP:-0} != 1 ]]; then
    rm -rf "$created_dir"
  elif [[ -d $work ]]; then
    rm -rf "$work/export" "$work/export.ndjson"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n ${CCVAULT:-} ]]; then
  ccvault=$CCVAULT
else
  say "building ccvault (release)"
  cargo build --release --locked -p ccvault -q
  ccvault=$repo/target/release/ccvault
fi
[[ -x $ccvault ]] || die "no ccvault binary at $ccvault"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
joined() { tr '\n' ' ' | sed 's/ $//'; }
now() { date +%s%N; }
secs() { awk -v ns=$(($2 - $1)) 'BEGIN { printf "%.3f\n", ns / 1e9 }'; }

corpus=$work/events.ndjson
data=$work/data
if [[ ! -s $corpus ]]; then
  say "simulating $events events"
  "$ccvault" simulate --events "$events" --days 7 --seed 1 --out "$corpus"
fi
if [[ ! -d $data ]]; then
  say "importing and building the projections"
  "$ccvault" -q --data-dir "$data" import "$corpus"
  "$ccvault" -q --data-dir "$data" rebuild
fi
records=$("$ccvault" --data-dir "$data" stats --format json | sed -E 's/.*"events":([0-9]+).*/\1/')

ndjson=() parquet=() events_table=() legs_table=() spans_table=() noop=()
for ((r = 1; r <= runs; r++)); do
  say "round $r of $runs"
  t0=$(now)
  "$ccvault" --data-dir "$data" export >"$work/export.ndjson"
  ndjson+=("$(secs "$t0" "$(now)")")
  rm -rf "$work/export"
  t0=$(now)
  "$ccvault" --data-dir "$data" export --format parquet --out "$work/export" 2>"$work/export.log"
  parquet+=("$(secs "$t0" "$(now)")")
  table_secs() { awk -v t="$1" '$1 == t { print $NF }' "$work/export.log" | tr -d 's'; }
  events_table+=("$(table_secs events)")
  legs_table+=("$(table_secs interactions)")
  spans_table+=("$(table_secs agent-states)")
  t0=$(now)
  "$ccvault" -q --data-dir "$data" export --format parquet --out "$work/export" --since-last
  noop+=("$(secs "$t0" "$(now)")")
done
say "NDJSON export ${ndjson[*]}; Parquet export ${parquet[*]} (events table ${events_table[*]}); incremental, nothing new ${noop[*]}"

raw=$(stat -c %s "$corpus")
exported=$(stat -c %s "$work/export.ndjson")
size() { du -sb "$work/export/$1" | cut -f1; }
ev=$(size events) legs=$(size interactions) spans=$(size agent-states)
m_nd=$(printf '%s\n' "${ndjson[@]}" | median)
m_pq=$(printf '%s\n' "${parquet[@]}" | median)
m_ev=$(printf '%s\n' "${events_table[@]}" | median)
m_legs=$(printf '%s\n' "${legs_table[@]}" | median)
m_spans=$(printf '%s\n' "${spans_table[@]}" | median)
m_noop=$(printf '%s\n' "${noop[@]}" | median)
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%\047.0f", n / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cat <<EOF
| $records events ($(ratio "$raw" 1048576 | cut -d. -f1) MiB NDJSON) | median of $runs | |
|---|---|---|
| \`export\` NDJSON to a file (baseline) | ${m_nd} s | $(rate "$records" "$m_nd") events/s |
| \`export --format parquet\`, all three tables | ${m_pq} s | $(ratio "$m_pq" "$m_nd")× the baseline |
| of it the events table (log scan and parse included) | ${m_ev} s | **$(rate "$records" "$m_ev") events/s** |
| of it interactions / agent-states | ${m_legs} s / ${m_spans} s | |
| \`--since-last\` with nothing new | ${m_noop} s | |
| events table size | $(ratio "$ev" 1048576) MiB | **$(ratio "$ev" "$raw")× the raw NDJSON** ($(ratio "$ev" "$exported")× the NDJSON export) |
| interactions / agent-states size | $(ratio "$legs" 1048576) MiB / $(ratio "$spans" 1048576) MiB | |
EOF
