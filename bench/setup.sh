#!/usr/bin/env bash
# Installs what bench/esp.ts needs from Debian's packages, when it is missing: iperf3 (the traffic)
# and strongSwan with kernel-libipsec (the reference peer, installed by conformance/setup.sh, which
# the conformance suite shares). Runs as root; quiet and quick when everything is there.
#
# iperf3's package ships a service: as in conformance/setup.sh, a policy-rc.d that forbids service
# starts is in place during the install (unless one exists already) and removed afterwards.
set -euo pipefail
here=$(dirname "$0")

if ! command -v iperf3 >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "bench/setup.sh: needs root to install iperf3" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from ike-node bench/setup.sh: start no services\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends iperf3 >/dev/null
fi

if [[ ! -x /usr/lib/ipsec/charon ]] || ! command -v swanctl >/dev/null; then
  bash "$here/../conformance/setup.sh"
fi
