#!/bin/sh
# run.sh <build_dir> — runs libpeft's benchmarks and compares them with a peer in the same run
# (DESIGN.md, Habits). Today: the LoRA training step on GPT-2 124M (bench/lora_step.c) against
# the same step in plain PyTorch (bench/lora_step_torch.py), which is run with 1 and 2 threads,
# keeping the faster. Prints figures, never passes or fails on time: exits non-zero only when
# libpeft's own benchmark fails. The last line is always
#   lora-step ratio (pytorch/libpeft): X.XX        (> 1: libpeft is faster)
# Environment: PEFT_BENCH_DIR (base model cache), BENCH_STEPS (timed steps, default 5),
# PYTHON (interpreter with torch; default: /usr/bin/python3 if it has torch, else python3).
set -u
if [ $# -ne 1 ]; then
    echo "usage: $0 <build_dir>" >&2
    exit 2
fi
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
STEPS=${BENCH_STEPS:-5}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libpeft-bench.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM

# value of key=... on the RESULT line of a log
result() { sed -n 's/^RESULT .*'"$2"'=\([^ ]*\).*/\1/p' "$1" | tail -n 1; }

# OpenBLAS (Debian's DYNAMIC_ARCH 0.3.21) falls back to its SSE3 "Prescott" kernels on CPUs it
# does not know (e.g. family 6 model 207 Xeons with AVX-512), making every GEMM 2-3x slower for
# libpeft and PyTorch alike. Unless OPENBLAS_CORETYPE is set already, pick the kernels the CPU
# supports for both sides of the comparison, and say so.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    core=$("$BUILD/bench/lora_step" --blas-core 2>/dev/null)
    flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
    want=
    case " $flags " in
        *" avx512f "*" avx512bw "*|*" avx512bw "*" avx512f "*) want=SkylakeX ;;
        *" avx2 "*) want=Haswell ;;
    esac
    case "$core" in
        Prescott|Core2|Penryn|Nehalem|Dunnington|Katmai|Coppermine|Northwood|Banias)
            if [ -n "$want" ]; then
                echo "note: OpenBLAS chose its '$core' kernels for this CPU, which supports $want's;"
                echo "      running both benchmarks with OPENBLAS_CORETYPE=$want (set OPENBLAS_CORETYPE to override)"
                OPENBLAS_CORETYPE=$want
                export OPENBLAS_CORETYPE
            fi ;;
    esac
fi

echo "== libpeft: LoRA training step, GPT-2 124M, batch 4 x 128 =="
if ! "$BUILD/bench/lora_step" --steps "$STEPS" 2>&1 | tee "$TMP/libpeft.log"; then
    echo "libpeft lora-step: FAILED" >&2
    exit 1
fi
# tee hides the benchmark's status: check that it reached its RESULT line
PEFT_MS=$(result "$TMP/libpeft.log" ms_per_step)
PEFT_RSS=$(result "$TMP/libpeft.log" peak_rss_mb)
if [ -z "$PEFT_MS" ]; then
    echo "libpeft lora-step: FAILED (no result)" >&2
    exit 1
fi

# the interpreter that has torch (Debian's python3-torch lives in /usr/bin/python3's path)
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import torch' >/dev/null 2>&1; then PY=$p; break; fi
    done
fi
if [ -z "$PY" ] || ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo
    echo "PyTorch comparison skipped: torch is not importable."
    echo "  install it with: apt-get install python3-torch   (Debian; PyTorch 1.13)"
    echo "lora-step ratio (pytorch/libpeft): n/a (python3-torch not installed)"
    exit 0
fi

BEST_MS= BEST_RSS= BEST_T=
for t in 1 2; do
    echo
    # OpenBLAS keeps its own 2 threads (as libpeft's GEMMs do); set_num_threads sets torch's
    # intra-op pool for everything else
    echo "== PyTorch: the same step, set_num_threads($t), OpenBLAS 2 threads =="
    if "$PY" "$HERE/lora_step_torch.py" --threads "$t" --blas-threads 2 --steps "$STEPS" 2>&1 | tee "$TMP/torch$t.log"; then :; fi
    ms=$(result "$TMP/torch$t.log" ms_per_step)
    rss=$(result "$TMP/torch$t.log" peak_rss_mb)
    if [ -z "$ms" ]; then
        echo "pytorch set_num_threads($t): failed (see above)"
        continue
    fi
    eval "TORCH_MS_$t=$ms"
    if [ -z "$BEST_MS" ] || awk -v a="$ms" -v b="$BEST_MS" 'BEGIN { exit !(a < b) }'; then
        BEST_MS=$ms BEST_RSS=$rss BEST_T=$t
    fi
done

echo
echo "== comparison =="
echo "libpeft: $PEFT_MS ms/step, peak RSS $PEFT_RSS MB (OpenBLAS default threads; kernels: ${OPENBLAS_CORETYPE:-auto-detected})"
if [ -z "$BEST_MS" ]; then
    echo "lora-step ratio (pytorch/libpeft): n/a (the PyTorch benchmark failed)"
    exit 0
fi
echo "pytorch: set_num_threads(1) ${TORCH_MS_1:-failed} ms/step, set_num_threads(2) ${TORCH_MS_2:-failed} ms/step"
echo "pytorch best: set_num_threads($BEST_T) $BEST_MS ms/step, peak RSS $BEST_RSS MB"
awk -v p="$PEFT_RSS" -v t="$BEST_RSS" \
    'BEGIN { printf "lora-step memory: libpeft peak RSS %.1f MB, pytorch %.1f MB (pytorch/libpeft %.2f)\n", p, t, t / p }'
awk -v p="$PEFT_MS" -v t="$BEST_MS" 'BEGIN { printf "lora-step ratio (pytorch/libpeft): %.2f\n", t / p }'
exit 0
