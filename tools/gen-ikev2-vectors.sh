#!/usr/bin/env bash
# Generates vectors/kdf-ikev2-generated.json (kind "kdf-ikev2", the field names of NIST ACVP
# kdf-components ikev2 as in vectors/kdf-ikev2.json): IKEv2 key derivation for the PRFs the
# published ACVP vectors cannot cover (md5, sha256, sha512), computed independently of the
# project's code. Every HMAC step is done by the openssl command line; bash only concatenates
# hex strings and cuts them to length.
#
# Formulas (RFC 7296 sections 2.13, 2.14, 2.17 and 2.18), prf = HMAC-<hash>:
#   prf+(K, S)    = T1 | T2 | ..., T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n) (n one byte)
#   SKEYSEED      = prf(Ni | Nr, g^ir)
#   DKM           = first dkmLength/8 bytes of prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
#   SK_d          = first (prf output length) bytes of DKM
#   derivedKeyingMaterialChild = prf+(SK_d, Ni | Nr), cut to its length
#   derivedKeyingMaterialDh    = prf+(SK_d, g^ir(new) | Ni | Nr), same length
#   sKeySeedReKey = prf(SK_d, g^ir(new) | Ni | Nr)
#
# Inputs are fresh random bytes from `openssl rand` on every run (g^ir and g^ir(new) are random
# strings of a group's shared-secret length, not the results of an actual exchange: the KDF does
# not care), so each run prints different vectors.
#
# Before generating, the same functions recompute every vector of vectors/kdf-ikev2.json (the
# published NIST ACVP vectors, sha1 and sha384); nothing is printed if any of them differs.
#
# Usage: tools/gen-ikev2-vectors.sh > vectors/kdf-ikev2-generated.json
#        tools/gen-ikev2-vectors.sh --check [FILE]
#            recomputes every field of every vector of FILE (default vectors/kdf-ikev2.json)
#            from its inputs, prints one line per vector, exits 1 on any mismatch.
set -euo pipefail
shopt -s inherit_errexit # a failing step inside $(...) fails the whole script

# shellcheck source=openssl-steps.sh
source "$(dirname "${BASH_SOURCE[0]}")/openssl-steps.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
published="$here/../vectors/kdf-ikev2.json"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# prf_plus HASH KEYHEX SEEDHEX LENGTH -> the first LENGTH bytes of prf+(K, S) (RFC 7296 2.13).
prf_plus() {
  local h=$1 k=$2 s=$3 len=$4 t="" out="" n=1
  while ((${#out} < len * 2)); do
    if ((n > 255)); then
      echo "prf_plus: $len bytes is more than 255 blocks of $h" >&2
      exit 1
    fi
    t=$(prf "$h" "$k" "$t$s$(printf '%02x' "$n")")
    out+=$t
    n=$((n + 1))
  done
  first_bytes "$out" "$len"
}

# derive HASH NI NR GIR GIRNEW SPII SPIR DKMBITS CHILDBYTES
#   -> prints "sKeySeed dkm child childDh sKeySeedReKey" (hex, space separated).
derive() {
  local h=$1 ni=$2 nr=$3 gir=$4 girnew=$5 spii=$6 spir=$7 dkmbits=$8 childlen=$9
  local skeyseed dkm skd child childdh rekey
  if ((dkmbits % 8 != 0)); then
    echo "derive: dkmLength $dkmbits is not whole bytes" >&2
    exit 1
  fi
  skeyseed=$(prf "$h" "$ni$nr" "$gir")
  dkm=$(prf_plus "$h" "$skeyseed" "$ni$nr$spii$spir" $((dkmbits / 8)))
  skd=$(first_bytes "$dkm" $((${#skeyseed} / 2)))
  child=$(prf_plus "$h" "$skd" "$ni$nr" "$childlen")
  childdh=$(prf_plus "$h" "$skd" "$girnew$ni$nr" "$childlen")
  rekey=$(prf "$h" "$skd" "$girnew$ni$nr")
  printf '%s %s %s %s %s' "$skeyseed" "$dkm" "$child" "$childdh" "$rekey"
}

# check FILE -> recomputes every vector of FILE; returns 1 on any mismatch.
check() {
  local file=$1 rows="$work/rows.tsv" bad=0 count=0
  local name h ni nr gir girnew spii spir dkmbits eskeyseed edkm echild echilddh erekey
  local skeyseed dkm child childdh rekey field res
  command -v python3 >/dev/null || { echo "python3 not found" >&2; return 1; }
  # python3 only reads the JSON: one tab-separated line of input and expected fields per vector.
  python3 - "$file" >"$rows" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
if d.get("kind") != "kdf-ikev2":
    sys.exit(f"{sys.argv[1]}: kind is {d.get('kind')!r}, not 'kdf-ikev2'")
fields = ["name", "hash", "nInit", "nResp", "gir", "girNew", "spiInit", "spiResp", "dkmLength",
          "sKeySeed", "derivedKeyingMaterial", "derivedKeyingMaterialChild",
          "derivedKeyingMaterialDh", "sKeySeedReKey"]
for v in d["vectors"]:
    missing = [f for f in fields if f not in v]
    if missing:
        sys.exit(f"{v.get('name')}: missing {missing}")
    row = [str(v[f]) for f in fields]
    if any("\t" in x or "\n" in x or x == "" for x in row):
        sys.exit(f"{v['name']}: empty field or tab/newline in a field")
    print("\t".join(row))
EOF
  while IFS=$'\t' read -r name h ni nr gir girnew spii spir dkmbits eskeyseed edkm echild echilddh erekey; do
    count=$((count + 1))
    local fail=""
    if ((dkmbits != ${#edkm} * 4)); then fail+=" dkmLength($dkmbits bits vs ${#edkm} hex digits)"; fi
    if ((${#echild} != ${#echilddh})); then fail+=" child/childDh lengths differ"; fi
    res=$(derive "$h" "$ni" "$nr" "$gir" "$girnew" "$spii" "$spir" "$dkmbits" $((${#echild} / 2)))
    read -r skeyseed dkm child childdh rekey <<<"$res"
    for field in skeyseed dkm child childdh rekey; do
      local e="e$field"
      if [[ ${!field} != "${!e}" ]]; then fail+=" $field"; fi
    done
    if [[ -n $fail ]]; then
      echo "MISMATCH $name:$fail"
      bad=$((bad + 1))
    else
      echo "ok $name ($h, DKM $dkmbits bits, child $((${#echild} * 4)) bits)"
    fi
  done <"$rows"
  if ((count == 0)); then
    echo "no vectors in $file" >&2
    return 1
  fi
  echo "$((count - bad)) of $count vectors of $file reproduced"
  ((bad == 0))
}

if [[ ${1:-} == --check ]]; then
  check "${2:-$published}"
  exit
fi
if (($# > 0)); then
  echo "usage: $0 [--check [FILE]]" >&2
  exit 2
fi

# The functions must reproduce the published ACVP vectors before they generate anything (run as
# a separate process, so that errexit is not suspended as it would be inside an if).
if ! bash "${BASH_SOURCE[0]}" --check "$published" >"$work/check.log"; then
  cat "$work/check.log" >&2
  echo "the published vectors of $published are not reproduced: nothing generated" >&2
  exit 1
fi

# One vector per line:
#   hash  Ni-bytes  Nr-bytes  g^ir-bytes (32 = ecp256/curve25519, 128 = modp1024,
#   256 = modp2048, 384 = modp3072)  dkmLength (bits)  child KEYMAT length (bytes)
cases=(
  "md5 16 16 32 512 64"
  "md5 32 48 128 1000 100"
  "md5 64 20 384 2048 160"
  "sha256 16 64 128 520 72"
  "sha256 32 32 256 1544 97"
  "sha256 48 24 384 2048 160"
  "sha512 64 64 384 2048 128"
  "sha512 24 40 32 1032 65"
  "sha512 16 48 256 776 150"
)

version=$(openssl version | awk '{ print $1 " " $2 }')
out="$work/out.json"
{
  printf '{\n'
  printf '  "source": "generated by tools/gen-ikev2-vectors.sh with %s: random inputs from openssl rand (nonces Ni and Nr of 16 to 64 bytes, 8-byte SPIs; g^ir and g^ir(new) are random strings of 32, 128, 256 or 384 bytes, not results of a real exchange), every HMAC step computed by the openssl command line (openssl dgst -<hash> -mac HMAC -macopt hexkey:...), formulas of RFC 7296 sections 2.13 (prf+), 2.14 (SKEYSEED = prf(Ni | Nr, g^ir); DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr); SK_d = first prf-output-length bytes of DKM), 2.17 (child KEYMAT = prf+(SK_d, [g^ir(new) |] Ni | Nr)) and 2.18 (rekeyed SKEYSEED = prf(SK_d, g^ir(new) | Ni | Nr)); field names as in NIST ACVP kdf-components ikev2 (dkmLength in bits; derivedKeyingMaterialChild and derivedKeyingMaterialDh have the same whole-byte length). Before generating, the same bash/openssl functions reproduce every published NIST ACVP vector of kdf-ikev2.json (sha1 and sha384; tools/gen-ikev2-vectors.sh --check)",\n' "$version"
  printf '  "kind": "kdf-ikev2",\n'
  printf '  "vectors": [\n'
} >"$out"

first=1
for c in "${cases[@]}"; do
  read -r h nilen nrlen girlen dkmbits childlen <<<"$c"

  ni=$(rand_hex "$nilen")
  nr=$(rand_hex "$nrlen")
  gir=$(rand_hex "$girlen")
  girnew=$(rand_hex "$girlen")
  spii=$(rand_hex 8)
  spir=$(rand_hex 8)
  res=$(derive "$h" "$ni" "$nr" "$gir" "$girnew" "$spii" "$spir" "$dkmbits" "$childlen")
  read -r skeyseed dkm child childdh rekey <<<"$res"

  if ((first)); then first=0; else printf ',\n' >>"$out"; fi
  {
    printf '    {\n'
    printf '      "name": "prf hmac-%s, Ni %d bytes, Nr %d bytes, g^ir %d bytes, DKM %d bits, child KEYMAT %d bytes",\n' \
      "$h" "$nilen" "$nrlen" "$girlen" "$dkmbits" "$childlen"
    printf '      "hash": "%s",\n' "$h"
    printf '      "nInit": "%s",\n' "$ni"
    printf '      "nResp": "%s",\n' "$nr"
    printf '      "gir": "%s",\n' "$gir"
    printf '      "girNew": "%s",\n' "$girnew"
    printf '      "spiInit": "%s",\n' "$spii"
    printf '      "spiResp": "%s",\n' "$spir"
    printf '      "dkmLength": %d,\n' "$dkmbits"
    printf '      "sKeySeed": "%s",\n' "$skeyseed"
    printf '      "derivedKeyingMaterial": "%s",\n' "$dkm"
    printf '      "derivedKeyingMaterialChild": "%s",\n' "$child"
    printf '      "derivedKeyingMaterialDh": "%s",\n' "$childdh"
    printf '      "sKeySeedReKey": "%s"\n' "$rekey"
    printf '    }'
  } >>"$out"
done
printf '\n  ]\n}\n' >>"$out"
cat "$out"
