#!/bin/sh
# mpi_batch.sh <build_dir> — wall time of the embedded-default batch (`make run`:
# examples/default.yaml, 7 runs) on one process against `mpirun -n 2` with OpenBLAS at one thread
# per rank, next to one process with OpenBLAS at two threads (the honest comparison on a 2-core
# machine: the same cores either way); then one data-parallel run (lora-r=8,
# training.data_parallel: 2) on one process and on two ranks. Prints figures, never passes or
# fails on time. Environment: BENCH_RUN_STEPS (updates per run, default: the file's 150),
# BENCH_NP (ranks, default 2). `make bench-mpi` runs it.
set -u
[ $# -eq 1 ] || { echo "usage: $0 <build_dir>" >&2; exit 2; }
BUILD=$1
HERE=$(cd "$(dirname "$0")/.." && pwd)
NP=${BENCH_NP:-2}
YAML="$HERE/examples/default.yaml"
SET=""
[ -n "${BENCH_RUN_STEPS:-}" ] && SET="--set training.steps=$BENCH_RUN_STEPS"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/libpeft-mpibench.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if ! command -v mpirun >/dev/null || "$BUILD/peft" run --help | grep -q "built without MPI"; then
    echo "mpi_batch: mpirun or an MPI build is missing (make deps; make)"; exit 0
fi
secs() { # label, command...: runs it, prints and returns the wall time
    label=$1; shift
    t0=$(date +%s.%N)
    "$@" > "$TMP/log" 2>&1 || { echo "mpi_batch: $label failed:"; tail -5 "$TMP/log"; exit 1; }
    t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc)
    printf '%-58s %8.1f s\n' "$label" "$dt"
    LAST=$dt
}
echo "embedded-default batch ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)):"
secs "1 process, OpenBLAS 2 threads" env OPENBLAS_NUM_THREADS=2 \
    "$BUILD/peft" run "$YAML" $SET --no-progress --output "$TMP/p2"
P2=$LAST
secs "1 process, OpenBLAS 1 thread" env OPENBLAS_NUM_THREADS=1 \
    "$BUILD/peft" run "$YAML" $SET --no-progress --output "$TMP/p1"
secs "mpirun -n $NP, OpenBLAS 1 thread per rank" mpirun --oversubscribe -n "$NP" -x OPENBLAS_NUM_THREADS=1 \
    "$BUILD/peft" run "$YAML" $SET --no-progress --output "$TMP/mpi"
MPI=$LAST
printf 'batch speed-up (1 process x 2 threads -> %d ranks x 1 thread): %.2fx\n' "$NP" "$(echo "$P2 / $MPI" | bc -l)"
echo "one data-parallel run (lora-r=8, training.data_parallel: $NP):"
DP="--only lora-r=8 --set training.data_parallel=$NP"
secs "1 process, OpenBLAS 2 threads" env OPENBLAS_NUM_THREADS=2 \
    "$BUILD/peft" run "$YAML" $SET $DP --no-progress --output "$TMP/dp1"
D1=$LAST
secs "mpirun -n $NP, OpenBLAS 1 thread per rank" mpirun --oversubscribe -n "$NP" -x OPENBLAS_NUM_THREADS=1 \
    "$BUILD/peft" run "$YAML" $SET $DP --no-progress --output "$TMP/dp2"
D2=$LAST
printf 'data-parallel speed-up: %.2fx\n' "$(echo "$D1 / $D2" | bc -l)"
