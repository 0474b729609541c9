#!/usr/bin/env bash
# Make `promtool` available (used by tests to lint /metrics output). Idempotent: does nothing when
# promtool is already on PATH. On Debian/Ubuntu the `prometheus` package ships promtool (2.42 here).
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(command -v promtool)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_promtool: no apt-get; install Prometheus' promtool by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps it to the server + promtool (no node exporters, no web assets).
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# The Debian package starts a prometheus service where an init system runs; we only need the tool.
command -v promtool >/dev/null 2>&1 || { echo "install_promtool: promtool still missing" >&2; exit 1; }
echo "promtool installed: $(command -v promtool) ($(promtool --version 2>&1 | head -1))"
