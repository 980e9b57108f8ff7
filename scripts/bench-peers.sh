#!/usr/bin/env bash
# ccvault side by side with the tools a user would pick instead (issue 12):
# a throw-away PostgreSQL 15 (jsonb table + btree on the interaction GUID)
# and DuckDB (a JSON table loaded from the same NDJSON), on one simulated
# corpus, every step a whole process as a user runs it. Prints one markdown
# table: durable import, size on disk (and x the raw NDJSON), full recompute
# from the stored events, lookup of one interaction, and the ratios of the
# peers to ccvault. Each time is the median of RUNS runs (lookups: LOOKUPS);
# the tools take turns within each round.
#
# The SQL peers compute only a five-field subset per interaction (created,
# queued, accepted, abandoned, then an hourly count and mean wait); ccvault's
# `rebuild` computes every metric of docs/METRICS.md. The script checks that
# PostgreSQL and DuckDB return the same hourly rows.
#
# Usage: scripts/bench-peers.sh [EVENTS]            (default 1000000)
# Environment:
#   BENCH_DIR    where corpus and databases go (default: a new temporary
#                directory, deleted at the end unless KEEP=1)
#   RUNS         runs of each timed step (default 3)
#   LOOKUPS      timed lookups per tool (default 11)
#   CCVAULT      the ccvault binary (default: cargo build --release, then
#                target/release/ccvault)
#   PG_BIN       PostgreSQL server binaries (default /usr/lib/postgresql/15/bin)
#   PG_PORT      port of the throw-away server (default 54329; it listens on a
#                unix socket in BENCH_DIR only)
#   PG_USER      the unprivileged user that runs PostgreSQL when the script
#                runs as root (default nobody)
#   DUCKDB_VENV  a Python venv with the duckdb package (default
#                BENCH_DIR/venv, created with `pip install duckdb`)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

events=${1:-1000000}
runs=${RUNS:-3}
lookups=${LOOKUPS:-11}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
pg_port=${PG_PORT:-54329}
pg_user=${PG_USER:-nobody}

say() { echo "bench-peers: $*" >&2; }
die() {
  say "$*"
  exit 1
}

[[ $events =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer, got '$events'"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$runs'"
[[ -x $pg_bin/initdb && -x $pg_bin/pg_ctl ]] || die "no PostgreSQL server binaries in $pg_bin (apt-get install postgresql-15, or set PG_BIN)"
command -v psql >/dev/null || [[ -x $pg_bin/psql ]] || die "psql not found"
psql_bin=$pg_bin/psql
[[ -x $psql_bin ]] || psql_bin=$(command -v psql)

# --- work directory and cleanup -------------------------------------------
# shellcheck source=scripts/lib/duckdb.sh
. scripts/lib/duckdb.sh
work_dir "${BENCH_DIR:-}" ccvault-bench-peers
pg_data=$work/pg/data
pg_sock=$work/pg/sock
pg_started=""

# Runs a command as the user that owns the PostgreSQL cluster.
as_pg() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u "$pg_user" -- "$@"
  else
    "$@"
  fi
}

cleanup() {
  local status=$?
  if [[ -n $pg_started ]]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 ||
      say "could not stop PostgreSQL (data directory $pg_data)"
  fi
  if [[ -n $created_dir && ${KEEP:-0} != 1 ]]; then
    rm -rf "$created_dir"
  elif [[ -d $work ]]; then
    # The databases are large and only this run's: drop them, keep the corpus.
    rm -rf "$work/pg" "$work/ccvault" "$work/duck.db" "$work/duck.db.wal" "$work/duck-subset.txt"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- timing helpers ---------------------------------------------------------
# Seconds (3 decimals) that a command takes, its stdout discarded.
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.4f\n", ns / 1e9 }'
}

# --- the tools --------------------------------------------------------------
ccvault_binary
duckdb_python

# --- the corpus -------------------------------------------------------------
corpus=$work/events.ndjson
if [[ ! -s $corpus ]]; then
  say "simulating $events events"
  "$ccvault" simulate --events "$events" --agents 400 --no-quirks --seed 5 --out "$corpus.tmp" 2>/dev/null
  mv "$corpus.tmp" "$corpus"
fi
raw_bytes=$(stat -L -c %s "$corpus")
lines=$(wc -l <"$corpus")
# One interaction to look up: the first named after the corpus's middle line.
guid=$(awk -v from=$((lines / 2)) 'NR >= from && match($0, /"interactionGUID":"[^"]*"/) {
  print substr($0, RSTART + 19, RLENGTH - 20); exit }' "$corpus")
[[ -n $guid ]] || die "no interactionGUID in the second half of $corpus"
say "corpus: $lines lines, $raw_bytes bytes; lookup GUID $guid"
# The three databases exist side by side during a round: PostgreSQL's
# table and index ~1.3x the corpus, DuckDB's file ~0.5x, ccvault's archive
# ~0.4x, and PostgreSQL's sort spill while it builds the index. A 10M run
# with 2.1x free failed every tool's import on a full disk; ask for 2.5x.
need=$((raw_bytes / 2 * 5))
free=$(df --output=avail -B1 "$work" | tail -n 1 | tr -d ' ')
((free >= need)) || die "$work has $((free >> 20)) MiB free; the three databases need about $((need >> 20)) MiB (2.5x the corpus) side by side"

# --- the three tools side by side --------------------------------------------
# Each round runs a step once per tool, so a change in the machine's load
# over the run weighs on all three alike.
cv_dir=$work/ccvault
mkdir -p "$work/pg"
if [[ $(id -u) == 0 ]]; then
  # The server refuses to run as root: the cluster belongs to PG_USER, who
  # must be able to reach the directory.
  chmod 711 "$work"
  chown "$pg_user" "$work/pg"
fi
as_pg mkdir -p "$pg_data" "$pg_sock"
as_pg "$pg_bin/initdb" -D "$pg_data" -U bench --auth=trust -E UTF8 --no-locale >/dev/null ||
  die "initdb failed (is $work reachable by $pg_user?)"
pg_started=1
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg/server.log" -w \
  -o "-p $pg_port -k $pg_sock -c listen_addresses=''" start >/dev/null ||
  die "PostgreSQL did not start; see $work/pg/server.log"
pg() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 -h "$pg_sock" -p "$pg_port" -U bench -d postgres "$@"; }

# CSV with quote and delimiter bytes that never occur in JSON text: each line
# is read verbatim (backslash escapes untouched) into one jsonb value.
pg_load=$work/pg/load.sql
cat >"$pg_load" <<SQL
create table events (body jsonb not null);
\\copy events from '$corpus' with (format csv, quote e'\\x01', delimiter e'\\x02')
create index events_guid on events ((body->'Interaction'->>'interactionGUID'));
SQL
pg_subset="with e as (select body->'Interaction'->>'interactionGUID' g, body->'Interaction'->>'event' ev,
  coalesce((body->'Interaction'->>'interactionEventTS')::bigint*1000,
           (body->'Interaction'->'msgInfo'->>'timestamp')::bigint) ts
  from events where body ? 'Interaction'),
s as (select g, min(ts) filter (where ev='InteractionCreated') cr,
  min(ts) filter (where ev='InteractionQueued') qu, min(ts) filter (where ev='InteractionAccepted') ac,
  count(*) filter (where ev='InteractionUnqueued') ab from e group by g)
select coalesce(cr,qu)/3600000 h, count(*), count(ac), sum((ab>0)::int), avg(ac-qu) from s group by 1 order by 1;"
pg_lookup_sql="select body from events where body->'Interaction'->>'interactionGUID' = '$guid'"

duck_db=$work/duck.db
# One whole Python process per step, like psql and ccvault.
duck() {
  "$py" - "$@" <<'PY'
import sys
import duckdb

step, db = sys.argv[1], sys.argv[2]
# Each Interaction event's GUID, type and time, as the subset query reads them.
EVENTS = """
with e as (select json_extract_string(body,'$.Interaction.interactionGUID') g,
  json_extract_string(body,'$.Interaction.event') ev,
  coalesce(json_extract(body,'$.Interaction.interactionEventTS')::bigint*1000,
           json_extract(body,'$.Interaction.msgInfo.timestamp')::bigint) ts
  from events where json_exists(body,'$.Interaction')),
"""
if step == "import":
    con = duckdb.connect(db)
    con.execute("create table events as select json as body from read_ndjson_objects(?)", [sys.argv[3]])
    # Closing checkpoints the database into its file.
    con.close()
    sys.exit(0)
con = duckdb.connect(db, read_only=True)
if step == "subset":
    rows = con.execute(EVENTS + """
s as (select g, min(ts) filter (where ev='InteractionCreated') cr,
  min(ts) filter (where ev='InteractionQueued') qu, min(ts) filter (where ev='InteractionAccepted') ac,
  count(*) filter (where ev='InteractionUnqueued') ab from e group by g)
select coalesce(cr,qu)//3600000 h, count(*), count(ac), sum((ab>0)::int), avg(ac-qu) from s group by 1 order by 1
""").fetchall()
elif step == "agree":
    # ccvault's summaries (an `interactions` CSV) against the events DuckDB
    # holds: every GUID in both, with the same first Created, Queued and
    # Accepted instants (docs/METRICS.md §3: createdAt, queuedAt, acceptedAt).
    con.execute("create temp table cv as select * from read_csv(?, all_varchar=true)", [sys.argv[3]])
    rows = con.execute(EVENTS + """
s as (select g, min(ts) filter (where ev='InteractionCreated') cr,
  min(ts) filter (where ev='InteractionQueued') qu, min(ts) filter (where ev='InteractionAccepted') ac
  from e group by g)
select (select count(*) from s), (select count(*) from cv),
  (select count(*) from s full join cv on s.g = cv.interactionGUID
   where s.g is null or cv.interactionGUID is null
      or coalesce(s.cr::varchar, '') <> coalesce(cv.createdAt, '')
      or coalesce(s.qu::varchar, '') <> coalesce(cv.queuedAt, '')
      or coalesce(s.ac::varchar, '') <> coalesce(cv.acceptedAt, ''))
""").fetchall()
elif step == "lookup":
    rows = con.execute(
        "select body from events where json_extract_string(body,'$.Interaction.interactionGUID') = ?",
        [sys.argv[3]],
    ).fetchall()
for r in rows:
    print("|".join("" if v is None else str(v) for v in r))
PY
}


# Every import reads the corpus from the page cache: read cold, 10M events
# took ~6.5 s of system time here, which fell on whichever tool went first
# (ccvault, every round), and a tool's own writes can evict it.
warm() {
  sync
  cat "$corpus" >/dev/null
}

cv_import=() pg_import=() duck_import=()
for ((i = 0; i < runs; i++)); do
  rm -rf "$cv_dir"
  warm
  cv_import+=("$(timed "$ccvault" -q --data-dir "$cv_dir" import "$corpus")")
  pg -c 'set client_min_messages = warning' -c 'drop table if exists events' -c checkpoint
  warm
  pg_import+=("$(timed pg -f "$pg_load")")
  rm -f "$duck_db" "$duck_db.wal"
  warm
  duck_import+=("$(timed duck import "$duck_db" "$corpus")")
done
say "import: ccvault ${cv_import[*]}; PostgreSQL ${pg_import[*]}; DuckDB ${duck_import[*]}"
pg -c 'vacuum analyze events'

cv_rebuild=() pg_recompute=() duck_recompute=()
for ((i = 0; i < runs; i++)); do
  cv_rebuild+=("$(timed "$ccvault" -q --data-dir "$cv_dir" rebuild)")
  pg_recompute+=("$(timed pg -c "$pg_subset")")
  duck_recompute+=("$(timed duck subset "$duck_db")")
done
say "recompute: ccvault ${cv_rebuild[*]}; PostgreSQL ${pg_recompute[*]}; DuckDB ${duck_recompute[*]}"

cv_bytes=$(du -sb "$cv_dir" | cut -f1)
pg_bytes=$(pg -At -c "select pg_total_relation_size('events')")
duck_bytes=$(($(stat -c %s "$duck_db") + $([[ -f $duck_db.wal ]] && stat -c %s "$duck_db.wal" || echo 0)))
pg -At -c "$pg_subset" >"$work/pg/subset.txt"
duck subset "$duck_db" >"$work/duck-subset.txt"

"$ccvault" --data-dir "$cv_dir" export --what interactions --format csv >"$work/cv-interactions.csv"
read -r sql_guids cv_guids differ < <(duck agree "$duck_db" "$work/cv-interactions.csv" | tr '|' ' ')
rm -f "$work/cv-interactions.csv"

cv_found=$("$ccvault" --data-dir "$cv_dir" show "$guid" --raw | wc -l)
pg_found=$(pg -At -c "$pg_lookup_sql" | wc -l)
duck_found=$(duck lookup "$duck_db" "$guid" | wc -l)
cv_lookup=() pg_lookup=() duck_lookup=()
for ((i = 0; i < lookups; i++)); do
  cv_lookup+=("$(timed "$ccvault" --data-dir "$cv_dir" show "$guid" --raw)")
  pg_lookup+=("$(timed pg -At -c "$pg_lookup_sql")")
  duck_lookup+=("$(timed duck lookup "$duck_db" "$guid")")
done
as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null
pg_started=""
rm -rf "$work/pg/data"

# What every DuckDB step pays before any work: starting Python and loading duckdb.
py_start=()
for ((i = 0; i < runs; i++)); do
  py_start+=("$(timed "$py" -c 'import duckdb')")
done

# --- checks -----------------------------------------------------------------
[[ $cv_found == "$pg_found" && $pg_found == "$duck_found" ]] ||
  die "the lookup found $cv_found (ccvault), $pg_found (PostgreSQL), $duck_found (DuckDB) events"
# Hour, interactions, accepted, abandoned must agree (the mean is printed
# differently by the two).
if ! diff <(cut -d'|' -f1-4 "$work/pg/subset.txt") <(cut -d'|' -f1-4 "$work/duck-subset.txt") >/dev/null; then
  die "PostgreSQL and DuckDB disagree on the subset query"
fi
hours=$(wc -l <"$work/duck-subset.txt")
[[ $differ == 0 && $sql_guids == "$cv_guids" ]] ||
  die "ccvault's createdAt/queuedAt/acceptedAt differ from the SQL's for $differ of $sql_guids interactions ($cv_guids in ccvault)"

# --- the table --------------------------------------------------------------
m() { printf '%s\n' "$@" | median; }
cv_i=$(m "${cv_import[@]}") pg_i=$(m "${pg_import[@]}") dk_i=$(m "${duck_import[@]}")
cv_r=$(m "${cv_rebuild[@]}") pg_r=$(m "${pg_recompute[@]}") dk_r=$(m "${duck_recompute[@]}")
cv_l=$(m "${cv_lookup[@]}") pg_l=$(m "${pg_lookup[@]}") dk_l=$(m "${duck_lookup[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
size() { awk -v b="$1" -v raw="$raw_bytes" 'BEGIN { printf "%.0f MB (%.2f× raw)", b / 1e6, b / raw }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }
secs() { awk -v s="$1" 'BEGIN { printf "%.2f s", s }'; }
rate() { awk -v s="$1" -v n="$lines" 'BEGIN { printf "%.0f", n / s }'; }

cat <<TABLE

$lines events, $((raw_bytes / 1000000)) MB of NDJSON (\`ccvault simulate --events $events --agents 400 --no-quirks --seed 5\`);
median of $runs runs ($lookups for lookups), each step a whole process; ratios are peer / ccvault.
$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg).

| step | ccvault | PostgreSQL 15 | DuckDB $("$py" -c 'import duckdb; print(duckdb.__version__)') | PG / ccvault | DuckDB / ccvault |
|---|---|---|---|---|---|
| durable import | $(secs "$cv_i") ($(rate "$cv_i") ev/s) | $(secs "$pg_i") | $(secs "$dk_i") | $(ratio "$pg_i" "$cv_i") | $(ratio "$dk_i" "$cv_i") |
| size on disk | $(size "$cv_bytes") | $(size "$pg_bytes") | $(size "$duck_bytes") | $(ratio "$pg_bytes" "$cv_bytes") | $(ratio "$duck_bytes" "$cv_bytes") |
| full recompute | $(secs "$cv_r") ($(rate "$cv_r") ev/s) | $(secs "$pg_r") | $(secs "$dk_r") | $(ratio "$pg_r" "$cv_r") | $(ratio "$dk_r" "$cv_r") |
| lookup one interaction ($cv_found events) | $(ms "$cv_l") | $(ms "$pg_l") | $(ms "$dk_l") | $(ratio "$pg_l" "$cv_l") | $(ratio "$dk_l" "$cv_l") |

All runs (s): ccvault import $(printf '%s\n' "${cv_import[@]}" | joined), rebuild $(printf '%s\n' "${cv_rebuild[@]}" | joined);
PostgreSQL import $(printf '%s\n' "${pg_import[@]}" | joined), recompute $(printf '%s\n' "${pg_recompute[@]}" | joined);
DuckDB import $(printf '%s\n' "${duck_import[@]}" | joined), recompute $(printf '%s\n' "${duck_recompute[@]}" | joined).
PostgreSQL and DuckDB agree on all $hours hourly rows of the subset; ccvault's createdAt,
queuedAt and acceptedAt equal the SQL's first Created, Queued and Accepted for all $cv_guids interactions.
Each DuckDB step includes starting Python and importing duckdb: $(printf '%s\n' "${py_start[@]}" | median) s.
Sizes: ccvault's whole data directory (log, index, projections); PostgreSQL's
pg_total_relation_size (heap, TOAST, index; WAL not counted); DuckDB's database file.
TABLE
