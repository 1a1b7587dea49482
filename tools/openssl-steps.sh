# Shared by the vector generators: each HMAC and hash step is one openssl command-line call,
# so the expected values come from an implementation independent of ours. Source this file.

command -v openssl >/dev/null || { echo "openssl not found" >&2; exit 1; }
command -v xxd >/dev/null || { echo "xxd not found" >&2; exit 1; }

rand_hex() { openssl rand -hex "$1"; }

# prf HASH KEYHEX DATAHEX -> HMAC-HASH(key, data) in lowercase hex.
prf() {
  local out
  out=$(printf '%s' "$3" | xxd -r -p | openssl dgst "-$1" -mac HMAC -macopt "hexkey:$2")
  printf '%s' "${out##*= }" | tr 'A-F' 'a-f'
}

# digest HASH DATAHEX -> HASH(data) in lowercase hex.
digest() {
  local out
  out=$(printf '%s' "$2" | xxd -r -p | openssl dgst "-$1")
  printf '%s' "${out##*= }" | tr 'A-F' 'a-f'
}

# first_bytes HEX N -> the first N bytes of HEX (fails if HEX is shorter).
first_bytes() {
  if ((${#1} < $2 * 2)); then
    echo "first_bytes: only $((${#1} / 2)) bytes, $2 wanted" >&2
    exit 1
  fi
  printf '%s' "${1:0:$(($2 * 2))}"
}
