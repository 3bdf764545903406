#!/bin/sh
# check-exports.sh — libpeft's exported symbols are exactly its documented API: every function
# declared in a public header (INCLUDE_DIR/peft/*.h, what `make install` installs) is exported
# by the library, and the library exports nothing else. Declarations are read by the compiler
# itself (gcc -aux-info) from a file including every header; static inline helpers, the plugin
# SDK (plugin*.h: plugins never link libpeft) and the tokenizers (tokenizer.h: their own static
# library) are not libpeft.so's. Every export carries the peft_ prefix (one namespace, as
# sqlite3_): anything else fails too.
# usage: scripts/check-exports.sh LIBPEFT.so INCLUDE_DIR
set -u
lib=$1; inc=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/peft-exports.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
for h in "$inc"/peft/*.h; do
  b=$(basename "$h")
  case $b in plugin*.h|tokenizer.h) continue ;; esac
  echo "#include \"peft/$b\""
done > "$tmp/all.c"
${CC:-cc} -std=gnu11 -I"$inc" -aux-info "$tmp/aux" -fsyntax-only "$tmp/all.c" || exit 2
# "/* INC/peft/x.h:12:NC */ extern int peft_f (int);" -> "peft_f x.h"
grep "/peft/[a-z_0-9]*\.h:" "$tmp/aux" | grep -v '^/\*[^*]*\*/ static ' |
  grep -v '/peft/plugin[a-z_0-9]*\.h:' | # plugin.h (through graph.h): the plugin's own entry

  sed -E 's|^/\* .*/peft/([a-z_0-9]+\.h):[0-9]+:[A-Z]+ \*/ extern ([^(]*[ *])?([A-Za-z_][A-Za-z_0-9]*) \(.*|\3 \1|' |
  sort -u > "$tmp/declared"
cut -d' ' -f1 "$tmp/declared" | sort -u > "$tmp/decl_names"
nm -D --defined-only "$lib" | awk '{print $NF}' | grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' |
  sort -u > "$tmp/exported"
bad=0
for s in $(comm -23 "$tmp/exported" "$tmp/decl_names"); do
  echo "exports: $lib exports $s, which no public header declares"; bad=1
done
for s in $(comm -13 "$tmp/exported" "$tmp/decl_names"); do
  echo "exports: $s ($(grep "^$s " "$tmp/declared" | cut -d' ' -f2)) is declared but not exported (PEFT_API missing?)"; bad=1
done
for s in $(grep -v '^peft_' "$tmp/exported"); do
  echo "exports: $lib exports $s, without the peft_ prefix"; bad=1
done
n=$(wc -l < "$tmp/exported")
[ $bad -eq 0 ] && echo "exports: $n symbols, each peft_-prefixed and declared in a public header"
exit $bad
