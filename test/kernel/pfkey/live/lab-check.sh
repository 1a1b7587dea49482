#!/bin/sh
# Runs INSIDE the kernel lab guest (Linux af_key):
#   conformance/lab/klab-run -t 240 test/kernel/pfkey/live/lab-check.sh
# A dummy interface carries 192.0.2.1/24 so that traffic to 192.0.2.x leaves through it.
set -eu
cd "$(dirname "$0")/../../../.."
ip link set lo up
ip link add d0 type dummy
ip addr add 192.0.2.1/24 dev d0
ip link set d0 up
exec node --import tsx test/kernel/pfkey/live/lab-check.ts
