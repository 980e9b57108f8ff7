#!/usr/bin/env bash
# Runs the whole test suite: every test binary, even after a failure
# (--no-fail-fast), then one summary line, "N passed, M failed", summed over
# the test binaries' result lines. Exits non-zero on any failure (or when a
# test binary does not build). Installs what the tests need first (the
# mosquitto broker, Chromium and its WebDriver, strace) when it is missing and we are
# root; otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packages the tests need: mosquitto (the MQTT tests), chromium and
# chromium-driver (tests/browser.rs drives a real headless Chromium), strace
# (tests/hostile.rs counts an import's fsyncs).
missing=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto)
fi
if [ ! -x /usr/lib/chromium/chromium ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if ! command -v chromedriver >/dev/null 2>&1; then
  missing+=(chromium-driver)
fi
if ! command -v strace >/dev/null 2>&1; then
  missing+=(strace)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: the tests need ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log" || status=$?

# "test result: ok. 12 passed; 0 failed; 0 ignored; ..." once per test binary.
read -r passed failed < <(awk '
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i + 1) ~ /^passed;?$/) p += $i
      if ($(i + 1) ~ /^failed;?$/) f += $i
    }
  }
  END { print p + 0, f + 0 }' "$log")
echo
echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ] || [ "$status" -ne 0 ]; then
  exit 1
fi
