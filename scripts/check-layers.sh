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
cd "$(dirname "$0")/.." || exit 2
bad=0
check() { # check DIR ALLOWED-REGEX: every quoted include in DIR must match ALLOWED-REGEX
  dir=$1; allowed=$2
  for f in $(find "$dir" -name '*.[ch]'); do
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
      inc=$(echo "$line" | sed 's/.*include[[:space:]]*"\([^"]*\)".*/\1/')
      # a header beside the file (same folder) is always fine
      [ -f "$(dirname "$f")/$inc" ] && continue
      if ! echo "$inc" | grep -Eq "$allowed"; then
        echo "layers: $f:${line%%:*}: includes \"$inc\" (not allowed from $dir/)"
        echo x
      fi
    done
  done | grep -v '^x$' && return 1
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
