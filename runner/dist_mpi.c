/* dist_mpi.c — dist.h over MPI (the standard API only: Open MPI and MPICH alike), built as the
 * module libpeft_dist_mpi.so (runner/dist_module.h): runner/dist.c loads it, and calls its
 * init (MPI_Init_thread, FUNNELED: only the main thread calls MPI; OpenBLAS's threads never do),
 * only when a launcher started this process or PEFT_MPI=1 asks for MPI. A plain `peft run`
 * never loads it.
 *
 * Waits never spin in MPI: a probe (MPI_Iprobe) or a test of a non-blocking collective
 * (MPI_Igatherv, MPI_Ibcast, MPI-3) alternates with nanosleep, 50 us growing to 2 ms, so a rank
 * that waits leaves its core to the ranks that train (2 ranks on 2 cores is the common case). */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "runner/dist_module.h"

static int started, rank_, size_ = 1;
static char library[256] = "MPI (not started)";

static int mpi_init(int *argc, char ***argv, char *err, size_t errlen)
{
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init_thread failed");
        return -1;
    }
    started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(v, &n);
    v[n < (int)sizeof v ? n : (int)sizeof v - 1] = 0;
    char *nl = strpbrk(v, "\n,");
    if (nl) *nl = 0;
    snprintf(library, sizeof library, "%s", v);
    return 0;
}

static int wait_req(MPI_Request *rq);

static void mpi_finalize(void)
{
    if (!started) return;
    MPI_Request rq; /* every rank here first, waiting asleep: MPI_Finalize may spin */
    if (MPI_Ibarrier(MPI_COMM_WORLD, &rq) == MPI_SUCCESS) wait_req(&rq);
    MPI_Finalize();
    started = 0;
}

static int mpi_rank(void) { return rank_; }
static int mpi_size(void) { return size_; }
static const char *mpi_library(void) { return library; }

static void mpi_abort(int code)
{
    if (started) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static void nap(long *ns)
{
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    if (*ns < 2000000) *ns *= 2;
}

static int mpi_send(int dst, int tag, int value)
{
    if (!started) return -1;
    return MPI_Send(&value, 1, MPI_INT, dst, tag, MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1;
}

static int mpi_poll(int tag, int *src, int *value)
{
    if (!started) return 0;
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, tag, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return 0;
    MPI_Recv(value, 1, MPI_INT, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    *src = st.MPI_SOURCE;
    return 1;
}

static int mpi_wait(int src, int tag, int *value, int *src_out)
{
    if (!started) return -1;
    long ns = 50000;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(src < 0 ? MPI_ANY_SOURCE : src, tag, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            MPI_Recv(value, 1, MPI_INT, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (src_out) *src_out = st.MPI_SOURCE;
            return 0;
        }
        nap(&ns);
    }
}

static int wait_req(MPI_Request *rq)
{
    long ns = 50000;
    for (;;) {
        int done = 0;
        if (MPI_Test(rq, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return -1;
        if (done) return 0;
        nap(&ns);
    }
}

static int mpi_gatherv(const float *send, int count, float *recv, const int *counts, int root)
{
    if (!started) {
        memcpy(recv, send, (size_t)count * sizeof *send);
        return 0;
    }
    int *displs = NULL;
    if (rank_ == root) {
        if (!(displs = malloc((size_t)size_ * sizeof *displs))) return -1;
        for (int r = 0, o = 0; r < size_; o += counts[r], r++) displs[r] = o;
    }
    MPI_Request rq;
    int rc = MPI_Igatherv(send, count, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, root, MPI_COMM_WORLD, &rq);
    rc = rc == MPI_SUCCESS ? wait_req(&rq) : -1;
    free(displs);
    return rc;
}

static int mpi_bcast(float *buf, int count, int root)
{
    if (!started) return 0;
    MPI_Request rq;
    if (MPI_Ibcast(buf, count, MPI_FLOAT, root, MPI_COMM_WORLD, &rq) != MPI_SUCCESS) return -1;
    return wait_req(&rq);
}

__attribute__((visibility("default"))) const runner_dist_ops *runner_dist_mpi_ops(void)
{
    static const runner_dist_ops ops = {
        .struct_size = sizeof ops, .init = mpi_init, .finalize = mpi_finalize, .rank = mpi_rank,
        .size = mpi_size, .library = mpi_library, .abort = mpi_abort, .send = mpi_send, .poll = mpi_poll,
        .wait = mpi_wait, .gatherv = mpi_gatherv, .bcast = mpi_bcast,
    };
    return &ops;
}
