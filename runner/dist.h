/* dist.h — the experiment runner's only contact with MPI. runner/dist.c implements it: one
 * process (rank 0 of 1), or, when MPI is wanted, through the MPI backend runner/dist_mpi.c (the
 * MPI standard API, Open MPI and MPICH alike), a module of its own (libpeft_dist_mpi.so) that
 * dist.c loads with dlopen: the command links no MPI. The scheduler (runner/sched.c) and
 * data-parallel training (runner/train.c) use these few calls and nothing else, so the rest of
 * the runner stays plain C.
 *
 * MPI is loaded and started only when the process was launched by an MPI launcher (mpirun,
 * mpiexec, srun with an MPI plugin: their environment says so) or PEFT_MPI=1 asks for it;
 * otherwise, and with PEFT_NO_MPI=1, the process runs as one plain process without touching MPI
 * at all. Built with MPI=0 there is no module (one process only).
 *
 * Waiting (for a request, an assignment, a collective) sleeps between probes instead of
 * spinning, so that an idle rank leaves its core to the ranks that compute.
 * Errors: functions return 0 or -1 with a message in err. */
#ifndef PEFT_RUNNER_DIST_H
#define PEFT_RUNNER_DIST_H

#include <stddef.h>

/* Starts MPI when launched by an MPI launcher (or PEFT_MPI=1); a no-op otherwise. -1 with err
 * when the launch asks for several processes but MPI is not available (a build without MPI, or
 * srun without an MPI plugin): running the whole batch once per process would do the work N
 * times; or when MPI is wanted but its module is missing or fails to load (err names the file). */
int runner_dist_init(int *argc, char ***argv, char *err, size_t errlen);
void runner_dist_finalize(void);
int runner_dist_rank(void); /* 0 without MPI */
int runner_dist_size(void); /* 1 without MPI */
/* "Open MPI v4.1.4, ..." (MPI_Get_library_version, first line), or how it is off */
const char *runner_dist_library(void);
/* ends every process of the job (MPI_Abort); exit(code) without MPI */
void runner_dist_abort(int code) __attribute__((noreturn));

/* Point to point: one int value with a tag. */
int runner_dist_send(int dst, int tag, int value);
/* 1 when a message with tag (from any rank) was waiting: received into *src, *value; else 0 */
int runner_dist_poll(int tag, int *src, int *value);
/* waits for a message with tag from src (any rank: src < 0), sleeping between probes; *src_out
 * (may be NULL) receives the sender */
int runner_dist_wait(int src, int tag, int *value, int *src_out);

/* Collectives over every rank, in a fixed order: each rank's counts[rank] floats gathered to
 * root in rank order (recv significant at root only), and a broadcast from root. */
int runner_dist_gatherv(const float *send, int count, float *recv, const int *counts, int root);
int runner_dist_bcast(float *buf, int count, int root);

#endif
