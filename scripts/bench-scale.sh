#!/usr/bin/env bash
# How the archive's costs grow with its size (issue 17, docs/BENCHMARKS.md
# "Scale"): for each size, archives the simulator's clean stream and times
# import (durable), reindex, rebuild, verify, `show GUID --raw` and stats, each
# a whole process under /usr/bin/time (wall, CPU, peak RSS), plus the
# baseline of copying the same bytes to disk with fsync, in the same run.
# Prints one table per binary: seconds, per-event cost and its ratio to the
# smallest size, peak RSS.
#
# Usage: scripts/bench-scale.sh [options] [SIZE...]      SIZE: 1M 10M 50M, or a count
#   --bin PATH        the ccvault binary (default target/release/ccvault, built if missing)
#   --before PATH     a second binary (e.g. an older commit's), run alternately with --bin
#   --dir DIR         where data goes (default target/bench-scale); removed at the end
#   --rounds N        runs of each binary per size (default 1); tables show medians
#   --stream          never store the input: `simulate | ccvault import -` (and
#                     `simulate | dd` for the baseline). Chosen by itself when the
#                     input and an archive do not both fit; import then runs at the
#                     simulator's speed, so compare CPU seconds, not wall time
#                     (the simulator writes into a FIFO: the CPU and RSS measured
#                     are the import's, or the copy's, alone)
# Default sizes: 1M 10M (50M only when asked: ~26 GB of input, ~5 GB archived).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/ccvault
before=""
dir=target/bench-scale
rounds=1
stream=0
baseline=1
sizes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --before) before="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --stream) stream=1; shift ;;
    --no-baseline) baseline=0; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "bench-scale.sh: unknown option $1" >&2; exit 2 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(1M 10M)
if [ "$bin" = target/release/ccvault ] && [ ! -x "$bin" ]; then
  cargo build --release --locked -p ccvault
fi
for b in "$bin" ${before:+"$before"}; do
  [ -x "$b" ] || { echo "bench-scale.sh: $b is not an executable" >&2; exit 2; }
done

count() {
  case "$1" in
    *M) echo $(( ${1%M} * 1000000 )) ;;
    *k|*K) echo $(( ${1%[kK]} * 1000 )) ;;
    *[!0-9]*|"") echo "bench-scale.sh: bad size $1" >&2; exit 2 ;;
    *) echo "$1" ;;
  esac
}

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
results="$dir/results.tsv"
: > "$results"
trap 'rm -rf "$dir"/archive "$dir"/copy "$dir"/input.ndjson "$dir"/input.fifo' EXIT

free_bytes() { df -B1 --output=avail "$dir" | tail -1 | tr -d ' '; }

# Records one whole process: label, size, step, then the command. Its stdout
# is discarded; the wall time (to the microsecond: /usr/bin/time rounds to
# 10 ms) and /usr/bin/time's CPU times and peak RSS go to the results.
measure() {
  local label="$1" n="$2" step="$3"; shift 3
  local t t0 t1
  t="$(mktemp)"
  t0=$EPOCHREALTIME
  /usr/bin/time -o "$t" -f '%U %S %M' "$@" > /dev/null
  t1=$EPOCHREALTIME
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$n" "$step" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')" "$(tr ' ' '\t' < "$t")" >> "$results"
  rm -f "$t"
}

# The clean stream (~515 bytes an event), identical for every binary.
simulate() { "$bin" simulate --no-quirks --events "$1" -q --seed 1; }

for size in "${sizes[@]}"; do
  n="$(count "$size")"
  # Input ~515 B an event; the archive ~80 B an event with sealed segments
  # compressed (log ~50, index ~30; 10M events: 798 MB), plus the
  # projections and the segments still waiting for the compressor: 200 B
  # an event leaves room for both. The baseline's copy (as large as the
  # input) is deleted before the archive is made.
  need_archive=$(( n * 200 ))
  need_stored=$(( n * 515 + need_archive ))
  avail="$(free_bytes)"
  if [ "$avail" -lt "$need_archive" ]; then
    echo "bench-scale.sh: $size needs ~$(( need_archive >> 30 )) GiB for an archive, $(( avail >> 30 )) GiB free in $dir: skipped" >&2
    continue
  fi
  mode=file
  if [ "$stream" = 1 ] || [ "$avail" -lt "$need_stored" ]; then mode=stream; fi
  echo "== $size ($n events, input $mode) ==" >&2
  if [ "$mode" = file ]; then
    measure sim "$n" simulate sh -c "\"$bin\" simulate --no-quirks --events $n -q --seed 1 --out \"$dir/input.ndjson\""
  fi
  guid="$(set +o pipefail; simulate 5000 | grep -o '"interactionGUID":"[^"]*"' | head -1 | cut -d'"' -f4)"
  for round in $(seq "$rounds"); do
    # Alternate which binary goes first, so that neither always runs on a
    # warmer (or busier) machine.
    order=("$bin" ${before:+"$before"})
    if [ -n "$before" ] && [ $(( round % 2 )) = 0 ]; then order=("$before" "$bin"); fi
    sync
    if [ "$baseline" = 0 ]; then
      :
    elif [ "$mode" = file ]; then
      measure baseline "$n" copy dd if="$dir/input.ndjson" of="$dir/copy" bs=4M conv=fsync status=none
    elif [ "$(free_bytes)" -lt $(( n * 540 )) ]; then
      # The copy is as large as the input: it would fill the disk (and
      # every other user's with it) before it could be timed.
      echo "   no copy + fsync baseline at $size: ~$(( n * 515 >> 30 )) GiB of input, $(( $(free_bytes) >> 30 )) GiB free" >&2
    else
      # Through a FIFO, so that /usr/bin/time counts the copy alone.
      mkfifo "$dir/input.fifo"
      simulate "$n" > "$dir/input.fifo" &
      measure baseline "$n" copy dd if="$dir/input.fifo" of="$dir/copy" bs=4M iflag=fullblock conv=fsync status=none
      wait $!
      rm -f "$dir/input.fifo"
    fi
    rm -f "$dir/copy"
    for b in "${order[@]}"; do
      label=after
      [ "$b" = "$bin" ] || label=before
      a="$dir/archive"
      rm -rf "$a"
      sync
      if [ "$mode" = file ]; then
        measure "$label" "$n" import "$b" import -q --data-dir "$a" "$dir/input.ndjson"
      else
        # Through a FIFO: the CPU and peak RSS are the import's alone.
        mkfifo "$dir/input.fifo"
        simulate "$n" > "$dir/input.fifo" &
        measure "$label" "$n" import "$b" import -q --data-dir "$a" - < "$dir/input.fifo"
        wait $!
        rm -f "$dir/input.fifo"
      fi
      measure "$label" "$n" reindex "$b" reindex -q --data-dir "$a"
      measure "$label" "$n" rebuild "$b" rebuild -q --data-dir "$a"
      measure "$label" "$n" verify "$b" verify -q --data-dir "$a"
      for _ in 1 2 3 4 5; do
        measure "$label" "$n" show "$b" show --data-dir "$a" "$guid" --raw
      done
      measure "$label" "$n" stats "$b" stats --data-dir "$a"
      echo "   $label round $round: $(du -sb "$a" | cut -f1) bytes archived" >&2
      rm -rf "$a"
    done
  done
  rm -f "$dir/input.ndjson"
done

# One table per binary: the median of each step's runs, per-event cost
# against the smallest size measured, and peak RSS.
awk -F'\t' '
  function median(list,   a, k, i, j, t) {
    k = split(list, a, " ")
    for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  {
    key = $1 SUBSEP $2 SUBSEP $3
    wall[key] = wall[key] " " $4; cpu[key] = cpu[key] " " ($5 + $6); rss[key] = rss[key] " " $7
    if (!(($1) in seenl)) { seenl[$1] = 1; labels[++nl] = $1 }
    if (!(($2) in seenn)) { seenn[$2] = 1; sizes[++ns] = $2 }
    if (!(($3) in seens)) { seens[$3] = 1; steps[++nst] = $3 }
  }
  END {
    for (l = 1; l <= nl; l++) {
      lab = labels[l]
      if (lab == "sim" || lab == "baseline") continue
      printf "\n### %s\n\n| step |", lab
      for (s = 1; s <= ns; s++) printf " %s events: s (per event), CPU s, peak RSS |", sizes[s]
      printf " per-event cost (wall, CPU) vs %s |\n|---|", sizes[1]
      for (s = 1; s <= ns + 1; s++) printf "---|"
      printf "\n"
      for (st = 1; st <= nst; st++) {
        step = steps[st]
        if (step == "simulate" || step == "copy") continue
        printf "| %s |", step
        ratio = ""
        for (s = 1; s <= ns; s++) {
          key = lab SUBSEP sizes[s] SUBSEP step
          if (!(key in wall)) { printf " |"; continue }
          w = median(wall[key]); c = median(cpu[key]); m = median(rss[key])
          per = w / sizes[s] * 1e6; cper = c / sizes[s] * 1e6
          if (s == 1) { first = per; cfirst = cper }
          else ratio = ratio sprintf("%s: wall %.2fx, CPU %.2fx ", sizes[s], per / first, cper / cfirst)
          if (step == "show" || step == "stats") printf " %.1f ms, %.2f, %d MiB |", w * 1000, c, m / 1024
          else printf " %.2f s (%.2f us), %.2f, %d MiB |", w, per, c, m / 1024
        }
        if (step == "show" || step == "stats") {
          ratio = ""
          for (s = 2; s <= ns; s++) ratio = ratio sprintf("%s: %.2fx time ", sizes[s], median(wall[lab SUBSEP sizes[s] SUBSEP step]) / median(wall[lab SUBSEP sizes[1] SUBSEP step]))
        }
        printf " %s|\n", ratio
      }
      printf "| copy + fsync (baseline) |"
      bratio = ""
      for (s = 1; s <= ns; s++) {
        key = "baseline" SUBSEP sizes[s] SUBSEP "copy"
        if (!(key in wall)) { printf " not measured |"; continue }
        w = median(wall[key]); per = w / sizes[s] * 1e6
        if (s == 1) bfirst = per; else bratio = bratio sprintf("%s: %.2fx ", sizes[s], per / bfirst)
        printf " %.2f s (%.2f us) |", w, per
      }
      printf " %s|\n| import / baseline |", bratio
      for (s = 1; s <= ns; s++) {
        if (!(("baseline" SUBSEP sizes[s] SUBSEP "copy") in wall)) { printf " |"; continue }
        printf " %.2fx |", median(wall[lab SUBSEP sizes[s] SUBSEP "import"]) / median(wall["baseline" SUBSEP sizes[s] SUBSEP "copy"])
      }
      printf " |\n"
    }
  }' "$results"
echo >&2
echo "raw runs (label, events, step, wall s, user s, sys s, peak RSS KiB): $results" >&2
