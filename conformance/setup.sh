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
command -v conntrack >/dev/null || packages+=(conntrack)
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

# The qemu kernel lab (conformance/lab/): prepare its artifacts (it installs qemu-system-x86 and
# busybox-static, downloads Debian's kernel package without installing it) unless they are there.
klab_tool=${IKE_NODE_KERNEL_LAB:-$(dirname "$(readlink -f "$0")")/lab}
klab_dir=${KLAB_DIR:-${TMPDIR:-/tmp}/kernel-lab}
if [[ -x $klab_tool/setup.sh ]] && { [[ ! -e $klab_dir/kernel.img || ! -e $klab_dir/initramfs.img ]] ||
  ! command -v qemu-system-x86_64 >/dev/null; }; then
  KLAB_DIR=$klab_dir DEBIAN_FRONTEND=noninteractive "$klab_tool/setup.sh" >/dev/null
fi

# libreswan (pluto 4.10) as an IKEv2 peer (conformance/lib/libreswan.ts). Debian's libreswan package
# conflicts with strongSwan (installing it would remove charon), so only the libraries pluto links
# against are installed (plus certutil, for pluto's NSS database), and the package itself is
# unpacked into a cache directory from which the harness runs pluto and whack. Nothing is
# installed under /etc, /usr/sbin or /usr/libexec, and no service is enabled.
libreswan_dir=${IKE_NODE_LIBRESWAN_DIR:-/var/cache/ike-node/libreswan}
libreswan_libs=(libnss3-tools libnss3 libnspr4 libevent-core-2.1-7 libevent-pthreads-2.1-7 libldns3
  libunbound8 libcurl3-nss libcap-ng0 libaudit1 libldap-2.5-0 libpam0g libselinux1 libsystemd0 libcrypt1)
missing_libs=()
for pkg in "${libreswan_libs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing_libs+=("$pkg")
done
if ((${#missing_libs[@]})) || [[ ! -x $libreswan_dir/usr/libexec/ipsec/pluto ]]; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "conformance/setup.sh: needs root to install libreswan into $libreswan_dir" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if ((${#missing_libs[@]})); then
    apt-get install -y -qq --no-install-recommends "${missing_libs[@]}" >/dev/null
  fi
  if [[ ! -x $libreswan_dir/usr/libexec/ipsec/pluto ]]; then
    download=$(mktemp -d)
    # apt drops to the _apt user for downloads: let it write there.
    chmod 777 "$download"
    (cd "$download" && apt-get download -qq libreswan)
    rm -rf "$libreswan_dir.new"
    mkdir -p "$libreswan_dir.new"
    dpkg -x "$download"/libreswan_*.deb "$libreswan_dir.new"
    rm -rf "$download" "$libreswan_dir"
    mv "$libreswan_dir.new" "$libreswan_dir"
  fi
fi
