#!/bin/sh
# check-layers.sh — fails when an #include crosses the layers the wrong way (README, "Layout"):
#   sdk/include/peft (public headers) -> nothing but other public headers
#   plugins/         -> sdk/include only
#   core/            -> public headers and core/ itself (never tokenizers/, runner/, cli/, plugins/)
#   tokenizers/      -> public headers and tokenizers/ itself
#   runner/          -> public headers (tokenizers and plugins through theirs), runner/ itself
#   sdk/conformance/ -> public headers and itself
#   cli/             -> public headers, runner/, tokenizers/, sdk/, cli/ itself: never core/ (the
#                       command and the conformance table link libpeft.so, which exports only
#                       the public API)
# One awk pass per folder (no process per include line: it runs in every `make check`).
cd "$(dirname "$0")/.." || exit 2
bad=0
check() { # check DIR ALLOWED-REGEX: every quoted include in DIR must match ALLOWED-REGEX
  find "$1" -name '*.[ch]' -exec awk -v dir="$1" -v allowed="$2" '
    /^[[:space:]]*#[[:space:]]*include[[:space:]]*"/ {
      inc = $0
      sub(/.*include[[:space:]]*"/, "", inc)
      sub(/".*/, "", inc)
      # a header beside the file (same folder) is always fine
      here = FILENAME
      sub(/\/[^\/]*$/, "", here)
      beside = here "/" inc
      if ((getline line < beside) >= 0) { close(beside); next }
      if (inc !~ allowed) {
        printf "layers: %s:%d: includes \"%s\" (not allowed from %s/)\n", FILENAME, FNR, inc, dir
        found = 1
      }
    }
    END { exit found }' {} + || return 1
  return 0
}
check sdk/include/peft '^peft/' || bad=1
check plugins '^peft/' || bad=1
check core '^(peft/|core/)' || bad=1
check tokenizers '^(peft/|tokenizers/)' || bad=1
check runner '^(peft/|runner/)' || bad=1
check sdk/conformance '^(peft/|sdk/conformance/)' || bad=1
check cli '^(peft/|cli/|runner/|sdk/|tokenizers/)' || bad=1
[ $bad -eq 0 ] && echo "layers: every include follows the dependency rule"
exit $bad
