#!/usr/bin/env bash
# Installs what the conformance suite needs from Debian's packages, when it is missing.
# Runs as root (CI and the lab machines are root); everything else in the suite assumes it ran.
#
# strongSwan is only a peer for the interop tests: the harness (conformance/lib/strongswan.ts) runs
# its own charon per network namespace with a private /run, never the system's. Installing must not
# start a system charon, so during the install a policy-rc.d that forbids service starts is put in
# place (unless one already exists) and removed afterwards.
set -euo pipefail

packages=()
command -v tshark >/dev/null || packages+=(tshark)
command -v tcpdump >/dev/null || packages+=(tcpdump)
command -v nft >/dev/null || packages+=(nftables)
command -v ping >/dev/null || packages+=(iputils-ping)
[[ -x /usr/lib/ipsec/charon ]] || packages+=(strongswan-charon)
command -v swanctl >/dev/null || packages+=(strongswan-swanctl)
for pkg in libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || packages+=("$pkg")
done

if ((${#packages[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "conformance/setup.sh: needs root to install: ${packages[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from ike-node conformance/setup.sh: start no services\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The qemu kernel lab (conformance/lib/kernel-lab.ts) is a separate tool, used when present: prepare
# its artifacts (it installs qemu-system-x86 and busybox-static, downloads Debian's kernel package
# without installing it) unless they are there already.
klab_tool=${IKE_NODE_KERNEL_LAB:-/work/shared/kernel-lab}
klab_dir=${KLAB_DIR:-${TMPDIR:-/tmp}/kernel-lab}
if [[ -x $klab_tool/setup.sh ]] && { [[ ! -e $klab_dir/kernel.img || ! -e $klab_dir/initramfs.img ]] ||
  ! command -v qemu-system-x86_64 >/dev/null; }; then
  KLAB_DIR=$klab_dir DEBIAN_FRONTEND=noninteractive "$klab_tool/setup.sh" >/dev/null
fi
