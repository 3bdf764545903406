# bench_lib.sh — sourced by the benchmark scripts (bench/run.sh, bench/real_shape.sh) after they
# set BENCH_TMP (a name for their scratch folder): checks the one argument (the build folder) and
# sets BUILD, HERE (bench/), TMP (removed on exit), PY (an interpreter that imports torch:
# $PYTHON, else /usr/bin/python3 or python3 if they have it; empty when none), and result().
if [ $# -ne 1 ]; then
    echo "usage: $0 <build_dir>" >&2
    exit 2
fi
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/$BENCH_TMP.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

# value of key=... on the RESULT line of a log (" key=": cpu_ms_per_step never shadows ms_per_step)
result() { sed -n 's/^RESULT.* '"$2"'=\([^ ]*\).*/\1/p' "$1" | tail -n 1; }

PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import torch' >/dev/null 2>&1; then PY=$p; break; fi
    done
fi
