#!/usr/bin/env bash
# The Parquet export as an analyst uses it (issue 14): the demo archive is
# exported with `ccvault export --format parquet`, DuckDB (from PyPI, in a
# venv) runs the example queries of docs/SCALE.md ("Querying the exports")
# on the files, and the script checks their numbers against ccvault's own:
#   service-level     = `ccvault report --interval 1d --by queue` (offered,
#                       answered, answered in SLA, abandoned, short abandons,
#                       service level), per tenant
#   slowest-contacts  = the same ranking (answered contacts of several legs)
#                       computed here from
#                       `ccvault interactions --format json`
#   table sizes       = rows of `export` NDJSON, `interactions`, and the
#                       span count of `agents` (`changes`)
# The queries are read from docs/SCALE.md itself (the ```sql blocks whose
# first line is `-- duckdb: NAME`), with EXPORT replaced by the export
# directory, so the documented queries are the tested ones. Prints the
# results as markdown (what SCALE.md shows) and exits 1 on any mismatch.
#
# With SPARK=1 it also runs the `-- spark: NAME` blocks with PySpark (needs
# a JVM, e.g. Debian's openjdk-17-jre-headless, and `pip install pyspark`
# in the venv) and checks that they return the DuckDB rows.
#
# Usage: scripts/check-parquet-duckdb.sh
# Environment:
#   WORK         work directory (default: a new temporary directory, deleted
#                at the end unless KEEP=1)
#   CCVAULT      the ccvault binary (default: cargo build --release, then
#                target/release/ccvault)
#   DUCKDB_VENV  a Python venv with the duckdb package (default WORK/venv,
#                created with `pip install duckdb`)
#   SEED         the demo's seed (default 7, the demo's own default)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

say() { echo "check-parquet-duckdb: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# shellcheck source=scripts/lib/duckdb.sh
. scripts/lib/duckdb.sh
work_dir "${WORK:-}" ccvault-parquet
cleanup() {
  local status=$?
  if [[ -n $created_dir && ${KEEP:-0} != 1 ]]; then
    rm -rf "$created_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ccvault_binary
duckdb_python

data=$work/demo
export_dir=$work/export
rm -rf "$data" "$export_dir"
say "creating the demo archive (seed ${SEED:-7}) and exporting it"
"$ccvault" -q demo --seed "${SEED:-7}" --into "$data" --format json >/dev/null
"$ccvault" -q --data-dir "$data" export --format parquet --out "$export_dir"

CCVAULT_BIN=$ccvault DATA=$data EXPORT_DIR=$export_dir SCALE_MD=${SCALE_MD:-$repo/docs/SCALE.md} \
  SPARK=${SPARK:-0} "$py" - <<'PY'
import json, os, re, subprocess, sys
from collections import defaultdict
from datetime import datetime, timezone

import duckdb

ccvault, data, export = os.environ["CCVAULT_BIN"], os.environ["DATA"], os.environ["EXPORT_DIR"]
doc = open(os.environ["SCALE_MD"]).read()
queries = {}
for block in re.findall(r"```sql\n(.*?)```", doc, re.S):
    m = re.match(r"-- (duckdb|spark): (\S+)", block)
    if m:
        queries[(m[1], m[2])] = block.replace("EXPORT", export)
for need in ["service-level", "slowest-contacts"]:
    if ("duckdb", need) not in queries:
        sys.exit(f"docs/SCALE.md has no ```sql block starting with `-- duckdb: {need}`")

def cli(*args):
    out = subprocess.run([ccvault, "--data-dir", data, *args], check=True, capture_output=True, text=True)
    return out.stdout

def json_lines(*args):
    return [json.loads(l) for l in cli(*args).splitlines()]

failures = []
def check(what, got, want):
    if got != want:
        failures.append(f"{what}: DuckDB {got!r}, ccvault {want!r}")

con = duckdb.connect()
def run(name):
    rel = con.sql(queries[("duckdb", name)])
    return rel.columns, rel.fetchall()

def table(columns, rows):
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    return "\n".join(out)

print(f"DuckDB {duckdb.__version__}, the demo archive (`ccvault demo --seed {os.environ.get('SEED', '7')}`) exported with `ccvault export --format parquet`.\n")

# Table sizes against the other outputs.
def count(t):
    return con.sql(f"SELECT count(*) FROM read_parquet('{export}/{t}/*/*/*.parquet', hive_partitioning = true)").fetchall()[0][0]
sizes = {
    "events": (count("events"), len(cli("export").splitlines())),
    "interactions": (count("interactions"), len(cli("interactions", "--format", "json").splitlines())),
    "agent-states": (count("agent-states"), sum(a["changes"] for a in json_lines("agents", "--format", "json"))),
}
for t, (got, want) in sizes.items():
    check(f"rows of {t}", got, want)
print(table(["table", "rows", "ccvault"], [(t, g, w) for t, (g, w) in sizes.items()]))
print()

# A day's service level by tenant and queue, against `report`.
cols, rows = run("service-level")
print("`service-level`:\n")
print(table(cols, rows))
print()
help_text = cli("report", "--help")
by_tenant = "--tenant" in help_text
tenants = sorted({r[cols.index("tenant")] for r in rows}, key=str)
if not by_tenant and len(tenants) > 1:
    failures.append(f"{len(tenants)} tenants but `report` has no --tenant to check them one by one")
checked = 0
for tenant in tenants:
    args = ["report", "--interval", "1d", "--by", "queue", "--format", "json"]
    if by_tenant and tenant is not None:
        args += ["--tenant", tenant]
    report = {}
    for r in json_lines(*args):
        day = datetime.fromtimestamp(r["intervalStart"] / 1000, timezone.utc).date().isoformat()
        report[(day, r["queueId"])] = r
    mine = [r for r in rows if r[cols.index("tenant")] == tenant]
    for r in mine:
        row = dict(zip(cols, r))
        key = (str(row["day"]), row["queueId"])
        want = report.pop(key, None)
        if want is None:
            failures.append(f"service-level {tenant} {key}: no such report row")
            continue
        for mine_col, theirs in [("offered", "offered"), ("answered", "answered"),
                                 ("answered_in_sla", "answeredInSla"), ("abandoned", "abandoned"),
                                 ("short_abandoned", "shortAbandoned"), ("service_level", "serviceLevel")]:
            got, exp = row[mine_col], want[theirs]
            if isinstance(got, float) or isinstance(exp, float):
                same = got is not None and exp is not None and abs(got - exp) < 1e-9
                same = same or (got is None and exp is None)
            else:
                same = got == exp
            if not same:
                failures.append(f"service-level {tenant} {key} {mine_col}: DuckDB {got!r}, report {exp!r}")
        checked += 1
    for key, r in report.items():
        if r["offered"] > 0:
            failures.append(f"service-level {tenant} {key}: report has {r['offered']} offered, DuckDB no row")
print(f"{checked} rows equal `ccvault report --interval 1d --by queue`'s (offered, answered, answeredInSla, abandoned, shortAbandoned, serviceLevel).\n")

# The slowest answered contacts across transfers, against the legs' JSON.
cols, rows = run("slowest-contacts")
print("`slowest-contacts`:\n")
print(table(cols, rows))
print()
contacts = defaultdict(list)
for leg in json_lines("interactions", "--format", "json"):
    contacts[(leg["tenant"], leg["contactId"])].append(leg)
mine = []
for (tenant, cid), legs in contacts.items():
    if len(legs) < 2 or not any(l["kind"] == "inbound" and l["outcome"] == "answered" for l in legs):
        continue
    waits = [l["waitMs"] for l in legs if l["kind"] == "inbound" and l["waitMs"] is not None]
    talks = [l["talkMs"] for l in legs if l["talkMs"] is not None]
    mine.append((tenant, cid, len(legs), sum(waits) if waits else None,
                 sum(talks) if talks else None, min(l["offeredAt"] for l in legs)))
mine.sort(key=lambda r: (-(r[3] if r[3] is not None else -1), r[1]))
got = [tuple(r) for r in rows]
check("slowest-contacts", got, mine[: len(rows)])
if len(rows) == 0:
    failures.append("slowest-contacts returned no rows")
print(f"The {len(rows)} rows equal the ranking computed from `ccvault interactions --format json`.\n")

if os.environ.get("SPARK") == "1":
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.master("local[2]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for name in ["service-level", "slowest-contacts"]:
        q = queries.get(("spark", name))
        if q is None:
            failures.append(f"docs/SCALE.md has no `-- spark: {name}` block")
            continue
        spark_rows = [tuple(r) for r in spark.sql(q.strip().rstrip(";")).collect()]
        duck = [tuple(r) for r in run(name)[1]]
        norm = lambda rs: [tuple(str(v) if v is not None else None for v in r) for r in rs]
        check(f"spark {name}", norm(spark_rows), norm(duck))
    print("PySpark returns the same rows for both queries.\n")

if failures:
    for f in failures:
        print("MISMATCH " + f, file=sys.stderr)
    sys.exit(1)
print("All checks passed.")
PY
