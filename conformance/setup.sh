#!/usr/bin/env bash
# Installs what the conformance suite needs from Debian's packages, when it is missing.
# Runs as root (CI and the lab machines are root); everything else in the suite assumes it ran.
set -euo pipefail

packages=()
command -v tshark >/dev/null || packages+=(tshark)
command -v tcpdump >/dev/null || packages+=(tcpdump)

if ((${#packages[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "conformance/setup.sh: needs root to install: ${packages[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
