#!/usr/bin/env python3
"""A slow feed through a pipe: what acknowledging (and committing) at each
pause costs (docs/BENCHMARKS.md, "A slow feed's index commit at each pause").

    scripts/bench-slow-feed.py CCVAULT DATA_DIR INPUT.ndjson [LINES] [GAP_MS]

Writes LINES lines of INPUT (default 200) one at a time to
`CCVAULT --data-dir DATA_DIR import - --print-acks`, reads each line's
acknowledgement, then sleeps GAP_MS (default 20) before the next; prints the
latency from write to acknowledgement. With CCVAULT_LOG=ccvault_store=debug
in the environment, the import's stderr (DATA_DIR.stderr) holds each index
commit's time: the script prints their count, median and largest.
"""
import re
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    ccvault, data, path = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    gap = (int(sys.argv[5]) if len(sys.argv) > 5 else 20) / 1000
    with open(path) as f:
        lines = [l for _, l in zip(range(n), f)]
    err_path = data.rstrip("/") + ".stderr"
    with open(err_path, "w") as err:
        p = subprocess.Popen(
            [ccvault, "--data-dir", data, "import", "-", "--print-acks"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        latencies = []
        for line in lines:
            start = time.monotonic()
            p.stdin.write(line if line.endswith("\n") else line + "\n")
            p.stdin.flush()
            if not p.stdout.readline():
                sys.exit("the import stopped; see " + err_path)
            latencies.append(time.monotonic() - start)
            time.sleep(gap)
        p.stdin.close()
        p.wait()
    latencies.sort()
    ms = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000
    print(f"acknowledged {len(latencies)} lines: median {ms(0.5):.1f} ms, "
          f"90th percentile {ms(0.9):.1f} ms, largest {latencies[-1] * 1000:.1f} ms")
    commits = []
    for m in re.finditer(r"index commit .*elapsed=([0-9.]+)(ms|µs|s)\b", open(err_path).read()):
        scale = {"s": 1000, "ms": 1, "µs": 0.001}[m.group(2)]
        commits.append(float(m.group(1)) * scale)
    if commits:
        commits.sort()
        print(f"index commits: {len(commits)}, median {commits[len(commits) // 2]:.2f} ms, "
              f"largest {commits[-1]:.2f} ms")


if __name__ == "__main__":
    main()
