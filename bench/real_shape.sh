#!/bin/sh
# real_shape.sh <build_dir> — the real-shape benchmarks of issue 11 (part of `make bench`; never
# a test: it prints figures and fails only when libpeft's own run fails).
#   1. Llama-3.2-1B shape (bench/configs/llama-3.2-1b.json, random weights), LoRA r=16 on every
#      linear layer, B=1, T=512, bf16 base: bench/real_shape (libpeft) against
#      bench/real_shape_torch.py (plain PyTorch) with an f32 base and with a bf16-stored base; the
#      faster PyTorch run is its tokens/s, the bf16 run its memory. Ratios printed.
#   2. With BENCH_8B=1 (not by default: ~20 GB of memory, many minutes): Llama-3-8B shape, one
#      LoRA step with a 4-bit NF4 base (QLoRA: prepare_model_for_kbit_training, gradient
#      checkpointing) and with a bf16 base (gradient checkpointing); peak RSS against 10 / 20 GB.
# Environment: BENCH_REAL=0 skips all of it; BENCH_REAL_SEQ (512), BENCH_REAL_STEPS (1 timed
# step after 1 warm-up), BENCH_REAL_CKPT=1 (libpeft 1B with gradient checkpointing + chunked
# loss), BENCH_8B_SEQ (128), PYTHON (an interpreter with torch).
set -u
[ "${BENCH_REAL:-1}" = 0 ] && exit 0
BENCH_TMP=libpeft-real
. "$(dirname "$0")/bench_lib.sh"
SEQ=${BENCH_REAL_SEQ:-512}
STEPS=${BENCH_REAL_STEPS:-1}

echo "== real shapes: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores =="
CK=
[ "${BENCH_REAL_CKPT:-0}" = 1 ] && CK=--ckpt
echo "== libpeft: Llama-3.2-1B shape, bf16 base, LoRA r=16 all-linear, B=1, T=$SEQ $CK =="
if ! "$BUILD/bench/real_shape" --config "$HERE/configs/llama-3.2-1b.json" --dtype bfloat16 \
        --seq "$SEQ" --steps "$STEPS" --warmup 1 $CK 2>&1 | tee "$TMP/peft.log"; then :; fi
P_TPS=$(result "$TMP/peft.log" tokens_per_s)
P_RSS=$(result "$TMP/peft.log" peak_rss_mb)
P_CPU=$(result "$TMP/peft.log" cpu_ms_per_step)
if [ -z "$P_TPS" ]; then
    echo "libpeft real-shape: FAILED" >&2
    exit 1
fi

if [ -z "$PY" ]; then
    echo "real-shape PyTorch comparison skipped: torch is not importable (apt-get install python3-torch)"
else
    for d in float32 bfloat16; do
        echo
        echo "== PyTorch: the same step, $d base, 2 threads =="
        "$PY" "$HERE/real_shape_torch.py" --config "$HERE/configs/llama-3.2-1b.json" --dtype "$d" \
            --seq "$SEQ" --steps "$STEPS" --warmup 1 --threads 2 2>&1 | tee "$TMP/torch_$d.log"
    done
    T32=$(result "$TMP/torch_float32.log" tokens_per_s)
    T16=$(result "$TMP/torch_bfloat16.log" tokens_per_s)
    R16=$(result "$TMP/torch_bfloat16.log" peak_rss_mb)
    C32=$(result "$TMP/torch_float32.log" cpu_ms_per_step)
    C16=$(result "$TMP/torch_bfloat16.log" cpu_ms_per_step)
    BEST=$(printf '%s\n%s\n' "${T32:-0}" "${T16:-0}" | sort -g | tail -n 1)
    # the faster PyTorch step (ms), for bench/gemm_ceiling's "most the GEMM floor allows"
    [ "$BEST" != 0 ] && [ "$SEQ" = 512 ] &&
        awk -v t="$BEST" -v s="$SEQ" 'BEGIN { printf "%.1f\n", s * 1e3 / t }' > "$BUILD/bench/torch_1b.ms"
    echo
    echo "== comparison (Llama-3.2-1B shape, B=1, T=$SEQ) =="
    echo "libpeft: $P_TPS tokens/s, CPU ${P_CPU:-?} ms/step, peak RSS $P_RSS MB"
    echo "pytorch: f32 base ${T32:-failed} tokens/s (CPU ${C32:-?} ms/step), bf16 base ${T16:-failed} tokens/s (CPU ${C16:-?} ms/step, peak RSS ${R16:-?} MB)"
    if [ "$BEST" != 0 ] && [ -n "$R16" ]; then
        awk -v p="$P_TPS" -v t="$BEST" -v pr="$P_RSS" -v tr="$R16" 'BEGIN {
            printf "real-shape speed ratio (libpeft/pytorch best): %.2f (target >= 1.5)\n", p / t
            printf "real-shape memory ratio (libpeft/pytorch bf16): %.2f (target <= 0.6)\n", pr / tr }'
        CBEST=$(printf '%s\n%s\n' "${C32:-0}" "${C16:-0}" | awk '$1 > 0' | sort -g | head -n 1)
        [ -n "$P_CPU" ] && [ -n "$CBEST" ] && awk -v p="$P_CPU" -v t="$CBEST" 'BEGIN {
            printf "real-shape CPU-time ratio (pytorch best/libpeft; fair on a shared machine): %.2f\n", t / p }'
    fi
fi

[ "${BENCH_8B:-0}" = 1 ] || exit 0
S8=${BENCH_8B_SEQ:-128}
for mode in nf4 bf16; do
    echo
    if [ $mode = nf4 ]; then
        echo "== libpeft: Llama-3-8B shape, 4-bit NF4 base (QLoRA), B=1, T=$S8, one step =="
        set -- --quant nf4 --ckpt; lim=10240
    else
        echo "== libpeft: Llama-3-8B shape, bf16 base, gradient checkpointing, B=1, T=$S8, one step =="
        set -- --ckpt; lim=20480
    fi
    "$BUILD/bench/real_shape" --config "$HERE/configs/llama-3-8b.json" --dtype bfloat16 \
        --seq "$S8" --steps 1 --warmup 0 "$@" 2>&1 | tee "$TMP/8b_$mode.log"
    r=$(result "$TMP/8b_$mode.log" peak_rss_mb)
    ms=$(result "$TMP/8b_$mode.log" ms_per_step)
    [ -n "$r" ] && awk -v r="$r" -v l="$lim" -v ms="$ms" -v m="$mode" 'BEGIN {
        printf "8B %s: step %.1f s, peak RSS %.2f GB (target <= %.0f GB)\n", m, ms / 1e3, r / 1024, l / 1024 }'
done
exit 0
