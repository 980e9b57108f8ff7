#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (the
# mosquitto broker for the MQTT tests) when it is missing and we are root;
# otherwise says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mosquitto >/dev/null
  else
    echo "scripts/test.sh: the MQTT tests need mosquitto: sudo apt-get install -y mosquitto" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"

cargo test --workspace --locked
