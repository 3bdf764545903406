#!/bin/sh
# blas_compare.sh <build_dir> — the GEMMs of the GPT-2 124M LoRA step (bench/gemm_shapes.c) on
# OpenBLAS and on BLIS, linked in turn, at 1 thread and at every core (`make bench-blas`). BLIS
# is taken from Debian's libblis-dev when installed, else from its packages unpacked under
# <build_dir>/blis (apt-get download + dpkg-deb -x: nothing is installed system-wide, and
# libblas.so.3 keeps pointing at OpenBLAS). Prints figures only; the library is built with the
# BLAS that measured faster here (README, Speed).
set -u
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-cc}
NCPU=$(nproc 2>/dev/null || echo 1)
mkdir -p "$BUILD/bench"
"$CC" -O2 -I/usr/include/x86_64-linux-gnu/openblas-pthread "$HERE/gemm_shapes.c" \
    -o "$BUILD/bench/gemm_openblas" -lopenblas || exit 1

inc= lib=
for d in /usr/include/x86_64-linux-gnu/blis-pthread /usr/include/blis; do
    [ -f "$d/cblas.h" ] && inc=$d && break
done
for d in /usr/lib/x86_64-linux-gnu/blis-pthread /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/libblis.so" ] && lib=$d && break
done
if [ -z "$inc" ] || [ -z "$lib" ]; then
    root="$BUILD/blis"
    if [ ! -f "$root/usr/include/x86_64-linux-gnu/blis-pthread/cblas.h" ]; then
        echo "BLIS: unpacking Debian's libblis4-pthread and libblis-pthread-dev under $root"
        mkdir -p "$root/debs" &&
            (cd "$root/debs" && apt-get download libblis4-pthread libblis-pthread-dev >/dev/null) &&
            for f in "$root"/debs/*.deb; do dpkg-deb -x "$f" "$root"; done ||
            { echo "BLIS: not available (apt-get download failed); OpenBLAS only"; root=; }
    fi
    [ -n "$root" ] && inc=$root/usr/include/x86_64-linux-gnu/blis-pthread &&
        lib=$root/usr/lib/x86_64-linux-gnu/blis-pthread
fi
LIBS=openblas
if [ -n "$inc" ] && "$CC" -O2 -I"$inc" "$HERE/gemm_shapes.c" -o "$BUILD/bench/gemm_blis" \
        -L"$lib" -lblis -Wl,-rpath,"$lib"; then
    LIBS="openblas blis"
fi
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $NCPU cores;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for t in 1 $([ "$NCPU" -gt 1 ] && echo "$NCPU"); do
    for l in $LIBS; do
        echo "== $l, $t thread(s) =="
        OPENBLAS_NUM_THREADS=$t BLIS_NUM_THREADS=$t "$BUILD/bench/gemm_$l" 3
        echo
    done
done
