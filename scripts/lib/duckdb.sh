# The setup shared by the scripts that run the built ccvault on a corpus
# and query the results with DuckDB (check-parquet-duckdb.sh, bench-parquet.sh,
# bench-peers.sh). Sourced, never run: it defines functions and sets no
# option. The sourcing script defines `say` and `die` and sets `repo` (the
# checkout) before calling them.
#
# Invariants: a work directory the script did not get from the user is
# its own (`created_dir`), and only that one is ever removed whole; the
# DuckDB venv is created only when the given one has no Python.

# Sets `work` to $1 (a directory the user named; created if missing) or
# to a new temporary directory named after $2; `created_dir` is that
# temporary directory, empty when the user named one.
work_dir() {
  created_dir=""
  if [[ -n $1 ]]; then
    mkdir -p "$1"
    work=$(cd "$1" && pwd)
  else
    work=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")
    created_dir=$work
  fi
}

# Sets `ccvault` to $CCVAULT, or builds the release binary of this checkout.
ccvault_binary() {
  if [[ -n ${CCVAULT:-} ]]; then
    ccvault=$CCVAULT
  else
    say "building ccvault (release)"
    cargo build --release --locked -p ccvault -q
    ccvault=$repo/target/release/ccvault
  fi
  [[ -x $ccvault ]] || die "no ccvault binary at $ccvault"
}

# Sets `py` to the Python of $DUCKDB_VENV (default $work/venv), creating
# that venv with `pip install duckdb` when it has none.
duckdb_python() {
  local venv=${DUCKDB_VENV:-$work/venv}
  if [[ ! -x $venv/bin/python ]]; then
    say "creating a Python venv with duckdb in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q duckdb
  fi
  py=$venv/bin/python
  "$py" -c 'import duckdb' 2>/dev/null || die "$venv has no duckdb package ($venv/bin/pip install duckdb)"
}

# The median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The lines of stdin on one line, for the log: "1.234 1.301 1.250".
joined() { tr '\n' ' ' | sed 's/ $//'; }
