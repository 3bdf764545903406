#!/bin/sh
# run.sh <build_dir> — runs libpeft's benchmarks and compares them with a peer in the same run
# (DESIGN.md, Habits). Today: the LoRA training step on GPT-2 124M (bench/lora_step.c) against
# the same step in plain PyTorch (bench/lora_step_torch.py), at 1, 2, 4, ... threads up to the
# cores present (a thread-scaling table for both peers, with peak RSS). At N threads libpeft's
# GEMMs and kernels use N threads; PyTorch runs with OpenBLAS at N threads and its intra-op pool
# at N and at 1 (its best on few cores), keeping the faster. Prints figures, never passes or
# fails on time: exits non-zero only when libpeft's own benchmark fails. The last line is always
#   lora-step ratio (pytorch/libpeft): X.XX        (> 1: libpeft is faster; at the most threads)
# Environment: PEFT_BENCH_DIR (base model cache), BENCH_STEPS (timed steps, default 5),
# BENCH_THREADS (the thread counts, e.g. "1 2"; default 1 2 4 ... nproc),
# PYTHON (interpreter with torch; default: /usr/bin/python3 if it has torch, else python3).
set -u
BENCH_TMP=libpeft-bench
. "$(dirname "$0")/bench_lib.sh"
STEPS=${BENCH_STEPS:-5}

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

NCPU=$(nproc 2>/dev/null || echo 1)
THREADS=${BENCH_THREADS:-}
if [ -z "$THREADS" ]; then
    THREADS=1 t=2
    while [ "$t" -lt "$NCPU" ]; do THREADS="$THREADS $t"; t=$((t * 2)); done
    [ "$NCPU" -gt 1 ] && THREADS="$THREADS $NCPU"
fi
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $NCPU cores" \
     "online; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"

for t in $THREADS; do
    echo "== libpeft: LoRA training step, GPT-2 124M, batch 4 x 128, $t thread(s) =="
    if ! "$BUILD/bench/lora_step" --steps "$STEPS" --threads "$t" 2>&1 | tee "$TMP/libpeft$t.log"; then
        echo "libpeft lora-step: FAILED" >&2
        exit 1
    fi
    # tee hides the benchmark's status: check that it reached its RESULT line
    if [ -z "$(result "$TMP/libpeft$t.log" ms_per_step)" ]; then
        echo "libpeft lora-step: FAILED (no result)" >&2
        exit 1
    fi
    echo
done

HAVE_TORCH=1
if [ -z "$PY" ] || ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    HAVE_TORCH=0
    echo "PyTorch comparison skipped: torch is not importable."
    echo "  install it with: apt-get install python3-torch   (Debian; PyTorch 1.13)"
fi

if [ "$HAVE_TORCH" = 1 ]; then
    for t in $THREADS; do
        for intra in $t 1; do
            [ "$intra" = 1 ] && [ "$t" != 1 ] || [ "$intra" = "$t" ] || continue
            echo "== PyTorch: the same step, OpenBLAS $t thread(s), set_num_threads($intra) =="
            "$PY" "$HERE/lora_step_torch.py" --threads "$intra" --blas-threads "$t" --steps "$STEPS" \
                2>&1 | tee "$TMP/torch$t-$intra.log" || :
            echo
            [ "$t" = 1 ] && break
        done
    done
fi

# the best PyTorch run at t threads: "ms rss intra cpu_ms"
torch_best() {
    best=
    for f in "$TMP/torch$1"-*.log; do
        [ -f "$f" ] || continue
        ms=$(result "$f" ms_per_step)
        [ -n "$ms" ] || continue
        intra=${f##*-}; intra=${intra%.log}
        if [ -z "$best" ] || awk -v a="$ms" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
            best="$ms $(result "$f" peak_rss_mb) $intra $(result "$f" cpu_ms)"
        fi
    done
    echo "$best"
}

echo "== comparison (kernels: ${OPENBLAS_CORETYPE:-auto-detected}; $(sed -n 's/^threads: .*OpenBLAS kernels: //p' "$TMP/libpeft1.log" | head -n 1)) =="
printf '%-8s %10s %10s %10s %20s %10s %10s %6s %6s %6s\n' threads "libpeft ms" "(CPU ms)" "RSS MB" "pytorch ms" "(CPU ms)" "RSS MB" ratio "CPU" mem
LAST_RATIO=
for t in $THREADS; do
    pm=$(result "$TMP/libpeft$t.log" ms_per_step)
    pr=$(result "$TMP/libpeft$t.log" peak_rss_mb)
    pc=$(result "$TMP/libpeft$t.log" cpu_ms)
    tb=$(torch_best "$t")
    if [ -n "$tb" ]; then
        set -- $tb
        LAST_RATIO=$(awk -v a="$1" -v b="$pm" 'BEGIN { printf "%.2f", a / b }')
        printf '%-8s %10s %10s %10s %20s %10s %10s %6s %6s %6s\n' "$t" "$pm" "$pc" "$pr" \
            "$1 (intra $3)" "${4:-n/a}" "$2" "$LAST_RATIO" \
            "$(awk -v a="${4:-0}" -v b="$pc" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }')" \
            "$(awk -v a="$pr" -v b="$2" 'BEGIN { printf "%.2f", a / b }')"
    else
        LAST_RATIO=
        printf '%-8s %10s %10s %10s %20s %10s %10s %6s %6s %6s\n' "$t" "$pm" "$pc" "$pr" n/a n/a n/a n/a n/a n/a
    fi
done
# PyTorch's best step at the most threads, for bench/gemm_ceiling's "most the GEMM floor allows"
if [ -n "$LAST_RATIO" ] && tb=$(torch_best "$t") && [ -n "$tb" ]; then
    echo "${tb%% *}" > "$BUILD/bench/torch_gpt2.ms"
fi
echo "(ratio = pytorch ms / libpeft ms, > 1: libpeft faster; CPU = the same for CPU time of all"
echo " threads, the fair figure on a machine shared with other work; mem = libpeft peak RSS / pytorch's)"
if [ "$HAVE_TORCH" = 0 ]; then
    echo "lora-step ratio (pytorch/libpeft): n/a (python3-torch not installed)"
elif [ -z "$LAST_RATIO" ]; then
    echo "lora-step ratio (pytorch/libpeft): n/a (the PyTorch benchmark failed)"
else
    echo "lora-step ratio (pytorch/libpeft): $LAST_RATIO"
fi
exit 0
