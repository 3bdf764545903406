#!/bin/sh
# long-functions.sh — every function longer than N lines (default 80), longest first:
# "LINES FILE:LINE NAME", the lines counted from the line of the opening brace to the closing
# one. A top-level definition is a line at column 0 with '(' that is no declaration, no
# preprocessor line and no initializer, followed by the brace that opens depth 1.
# usage: scripts/long-functions.sh [N] [DIR...]   (dirs default: the library, command and SDK)
set -u
n=${1:-80}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- core cli runner sdk tokenizers plugins
find "$@" -name '*.c' | sort | xargs awk '
FNR == 1 { depth = 0; sig = ""; infn = 0 }
{
  line = $0
  if (depth == 0 && line ~ /^[A-Za-z_].*\(/ && line !~ /;[ \t]*$/ && line !~ /=/) { sig = line; sigline = FNR }
  opens = gsub(/\{/, "{", line); closes = gsub(/\}/, "}", line)
  if (depth == 0 && opens > closes && sig != "") {
    start = FNR; name = sig; sub(/\(.*/, "", name); k = split(name, a, /[ \t*]+/); name = a[k]; infn = 1; fstart = sigline
  }
  depth += opens - closes
  if (depth == 0 && infn) { print (FNR - start + 1), FILENAME ":" fstart, name; infn = 0; sig = "" }
  if (depth == 0 && line ~ /;[ \t]*$/) sig = ""
}' | sort -rn | awk -v n="$n" '$1 > n'
