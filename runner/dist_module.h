/* dist_module.h — the table through which runner/dist.c reaches the MPI backend. The backend
 * (runner/dist_mpi.c) is a module of its own, libpeft_dist_mpi.so, the only object linked with
 * the MPI's libraries; dist.c dlopen()s it only when MPI is wanted, so a process that never runs
 * under an MPI launcher does not load libmpi and the libraries it pulls in. The module and the
 * command are built together; struct_size catches a stale module. Private to the runner. */
#ifndef PEFT_RUNNER_DIST_MODULE_H
#define PEFT_RUNNER_DIST_MODULE_H

#include <stddef.h>

#define RUNNER_DIST_MPI_FILE "libpeft_dist_mpi.so"
#define RUNNER_DIST_MPI_ENTRY "runner_dist_mpi_ops"

/* the calls of dist.h, as the module implements them once MPI is wanted */
typedef struct runner_dist_ops {
    size_t struct_size; /* sizeof(runner_dist_ops) where the module was built */
    /* MPI_Init_thread and the rank, size and library name; 0, or -1 with err */
    int (*init)(int *argc, char ***argv, char *err, size_t errlen);
    void (*finalize)(void);
    int (*rank)(void);
    int (*size)(void);
    const char *(*library)(void); /* static storage of the module */
    void (*abort)(int code);
    int (*send)(int dst, int tag, int value);
    int (*poll)(int tag, int *src, int *value);
    int (*wait)(int src, int tag, int *value, int *src_out);
    int (*gatherv)(const float *send, int count, float *recv, const int *counts, int root);
    int (*bcast)(float *buf, int count, int root);
} runner_dist_ops;

/* the module's one export (RUNNER_DIST_MPI_ENTRY): its table, static storage */
const runner_dist_ops *runner_dist_mpi_ops(void);

#endif
