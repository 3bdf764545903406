/* runner_dist_none.c — dist.h when libpeft is built without MPI: one process, rank 0 of 1. A
 * launch that asks for several processes (mpirun or srun started this binary N times) is refused
 * rather than running the whole batch N times. */
#include <stdio.h>
#include <stdlib.h>
#include "runner/dist.h"

/* the size an MPI launcher announced, or 0 */
static long launched_size(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS",
                          "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 1) return atol(v);
    }
    return 0;
}

int runner_dist_init(int *argc, char ***argv, char *err, size_t errlen)
{
    (void)argc, (void)argv;
    long n = launched_size();
    if (n > 1 && !getenv("PEFT_NO_MPI")) {
        snprintf(err, errlen, "started as %ld processes (mpirun/srun), but this peft was built without MPI: "
                 "each would run the whole batch. Install libopenmpi-dev (make deps) and rebuild, or run one "
                 "process per shard with --shard I/N", n);
        return -1;
    }
    return 0;
}

void runner_dist_finalize(void) {}
int runner_dist_rank(void) { return 0; }
int runner_dist_size(void) { return 1; }
const char *runner_dist_library(void) { return "none (built without MPI)"; }
void runner_dist_abort(int code) { exit(code); }
int runner_dist_send(int dst, int tag, int value) { (void)dst, (void)tag, (void)value; return -1; }
int runner_dist_poll(int tag, int *src, int *value) { (void)tag, (void)src, (void)value; return 0; }
int runner_dist_wait(int src, int tag, int *value, int *src_out)
{
    (void)src, (void)tag, (void)value, (void)src_out;
    return -1;
}
int runner_dist_gatherv(const float *send, int count, float *recv, const int *counts, int root)
{
    (void)counts, (void)root;
    for (int i = 0; i < count; i++) recv[i] = send[i];
    return 0;
}
int runner_dist_bcast(float *buf, int count, int root) { (void)buf, (void)count, (void)root; return 0; }
