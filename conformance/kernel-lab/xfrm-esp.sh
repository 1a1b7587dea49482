#!/bin/sh
# Runs inside the qemu kernel lab (conformance/lib/kernel-lab.ts): the guest kernel accepts an ESP
# state over XFRM netlink, which the host kernel refuses (no ESP there).
set -eu
echo "guest kernel: $(uname -r)"
ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00001000 reqid 1 mode tunnel \
  enc 'cbc(aes)' 0x000102030405060708090a0b0c0d0e0f \
  auth-trunc 'hmac(sha1)' 0x101112131415161718191a1b1c1d1e1f20212223 96
ip xfrm state list | grep -q 'proto esp spi 0x00001000'
echo 'XFRM_ESP_STATE_OK'
ip xfrm state flush
