#!/usr/bin/env bash
# Two ccvault binaries on one step, alternated round by round with their
# order swapped each round, so that both meet the machine's slow and fast
# moments alike (docs/BENCHMARKS.md, the "alternated" comparisons). Each run
# is a whole process under /usr/bin/time; prints every run (wall, user,
# system seconds, peak RSS KiB), then each binary's medians.
#
# Usage: scripts/bench-ab.sh [--dir DIR] STEP ROUNDS BIN_A BIN_B INPUT
#   STEP   import: each run imports INPUT (NDJSON) into a fresh directory;
#          reindex, rebuild, verify, export: each binary works on an archive
#          of its own, imported from INPUT (and rebuilt) by that binary
#          first, since a binary rebuilds an index of another version at
#          open; export writes Parquet into a fresh directory each run
#   --dir  where the archives go (default target/bench-ab); removed at the end
# RT=1: the timed processes run under `chrt -f 50` (as root); see below.
# PAUSE=S: S seconds of sleep before each run (after `sync` and reading
#          INPUT into the page cache), so that no run gets the memory the
#          run before it just freed: on the VMs measured a 2 MiB page freed
#          seconds ago is cheap to fault in again, a cold one costs ~3-8 ms
#          (bench-peers runs PostgreSQL and DuckDB between ccvault's runs,
#          and a user's import seldom follows another; docs/BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=target/bench-ab
if [ "${1:-}" = "--dir" ]; then
  dir="$2"
  shift 2
fi
if [ $# -ne 5 ]; then
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
step=$1 rounds=$2 input=$5
bins=("$3" "$4")
case "$step" in
  import | reindex | rebuild | verify | export) ;;
  *) echo "bench-ab: unknown step '$step'" >&2; exit 2 ;;
esac
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "bench-ab: $b is not an executable" >&2; exit 2; }
done
[ -r "$input" ] || { echo "bench-ab: cannot read $input" >&2; exit 2; }

# Under the ordinary scheduler, as users run it. `RT=1` (as root) runs the
# timed processes under `chrt -f 50` instead, as the comparisons before
# 2026-12-04 23:30 UTC did: no other process preempts them then, but
# neither do their own threads each other (a real-time thread runs until it
# blocks), which made a 10M import 25 % slower (docs/BENCHMARKS.md).
rt=()
if [ "${RT:-0}" = 1 ] && [ "$(id -u)" = 0 ] && command -v chrt >/dev/null; then
  rt=(chrt -f 50)
fi
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
runs="$dir/runs.txt"

# The archive of binary number $1 (0 or 1).
archive() { echo "$dir/archive-$1"; }

if [ "$step" != import ]; then
  for i in 0 1; do
    "${bins[$i]}" -q --data-dir "$(archive $i)" import "$input" >/dev/null
    "${bins[$i]}" -q --data-dir "$(archive $i)" rebuild >/dev/null
  done
fi

run() {
  local i=$1 bin=${bins[$1]} data
  local args=()
  case "$step" in
    import)
      data="$dir/import-$i"
      rm -rf "$data"
      args=(--data-dir "$data" -q import "$input")
      ;;
    export)
      rm -rf "$dir/parquet-$i"
      args=(--data-dir "$(archive "$i")" -q export --format parquet --out "$dir/parquet-$i")
      ;;
    *) args=(--data-dir "$(archive "$i")" -q "$step") ;;
  esac
  if [ "${PAUSE:-0}" != 0 ]; then
    sync
    cat "$input" >/dev/null
    sleep "$PAUSE"
  fi
  local t
  t=$("${rt[@]}" /usr/bin/time -f "T %e %U %S %M" "$bin" "${args[@]}" 2>&1 >/dev/null | awk '/^T /{print $2, $3, $4, $5}')
  echo "$i $t" >>"$runs"
  echo "$bin $t"
}

for ((r = 1; r <= rounds; r++)); do
  if ((r % 2)); then run 0; run 1; else run 1; run 0; fi
done

echo
echo "medians over $rounds runs each: wall, CPU (user + system), peak RSS"
median() {
  sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
for i in 0 1; do
  of() { awk -v i="$i" -v c="$1" '$1 == i { print (c == "cpu") ? $3 + $4 : (c == "wall") ? $2 : $5 }' "$runs" | median; }
  printf '%s: wall %.3f s, CPU %.3f s, peak %d KiB\n' "${bins[$i]}" "$(of wall)" "$(of cpu)" "$(of rss)"
done
