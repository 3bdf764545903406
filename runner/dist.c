/* dist.c — dist.h: one process, rank 0 of 1, unless MPI is wanted. MPI is wanted when an MPI
 * launcher started this process (Open MPI's mpirun: OMPI_COMM_WORLD_SIZE; MPICH's Hydra and
 * Slurm's PMI-2: PMI_SIZE / PMI_RANK; PMIx launchers such as srun --mpi=pmix: PMIX_RANK; Intel
 * MPI: MPI_LOCALNRANKS) or PEFT_MPI=1 asks for it; PEFT_NO_MPI=1 turns it off. Then the MPI
 * backend, a module of its own (libpeft_dist_mpi.so, runner/dist_mpi.c, runner/dist_module.h),
 * is dlopen()ed and every call below goes through it. `peft` links no MPI: the processes that
 * never run under a launcher (nearly all of them) do not load libmpi and the ten-odd libraries
 * it pulls in at every start.
 *
 * The module is looked for next to the executable (the build tree: build/peft beside
 * build/libpeft_dist_mpi.so), then in ../lib/libpeft/ from it (an installed bin/peft), or where
 * PEFT_DIST_MPI_MODULE says. Built with MPI=0 (PEFT_DIST_MPI undefined) there is no module, and
 * a launch of several processes is refused rather than running the whole batch in each. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runner/dist.h"
#include "runner/dist_module.h"
#ifdef PEFT_DIST_MPI
#include <dlfcn.h>
#include <unistd.h>
#endif

static const struct runner_dist_ops *mpi; /* the module's table once MPI is started, else NULL */

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

#ifndef PEFT_DIST_MPI
static const char *library = "none (built without MPI)";

/* the size an MPI launcher (or srun) announced, or 0 */
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
    if (getenv("PEFT_NO_MPI")) return 0;
    long n = launched_size();
    if (n > 1) {
        snprintf(err, errlen, "started as %ld processes (mpirun/srun), but this peft was built without MPI: "
                 "each would run the whole batch. Install libopenmpi-dev (make deps) and rebuild, or run one "
                 "process per shard with --shard I/N", n);
        return -1;
    }
    if (env_on("PEFT_MPI")) {
        snprintf(err, errlen, "PEFT_MPI=1 asks for MPI, but this peft was built without MPI (install "
                 "libopenmpi-dev, make deps, and rebuild)");
        return -1;
    }
    return 0;
}
#else
static char library[64] = "MPI (not started: no launcher)";

static int env_pos(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

static int launched_by_mpi(void)
{
    return env_pos("OMPI_COMM_WORLD_SIZE") || env_pos("PMI_SIZE") || env_pos("PMI_RANK") ||
           env_pos("PMIX_RANK") || env_pos("MPI_LOCALNRANKS");
}

/* where the module is (path, n): PEFT_DIST_MPI_MODULE, else the first of <exe dir>/ and
 * <exe dir>/../lib/libpeft/ that holds it, else the first (for the error); where it looked, in
 * words, in tried */
static void module_path(char *path, size_t n, char *tried, size_t tn)
{
    const char *env = getenv("PEFT_DIST_MPI_MODULE");
    if (env && *env) {
        snprintf(path, n, "%s", env);
        snprintf(tried, tn, "where PEFT_DIST_MPI_MODULE says");
        return;
    }
    char dir[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", dir, sizeof dir - 1);
    dir[len > 0 ? len : 0] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) { /* no /proc: the dynamic loader's search path */
        snprintf(path, n, "%s", RUNNER_DIST_MPI_FILE);
        snprintf(tried, tn, "on the library search path");
        return;
    }
    *slash = 0;
    snprintf(tried, tn, "in %s/ and %s/../lib/libpeft/", dir, dir);
    snprintf(path, n, "%s/%s", dir, RUNNER_DIST_MPI_FILE);
    char installed[PATH_MAX + 64];
    snprintf(installed, sizeof installed, "%s/../lib/libpeft/%s", dir, RUNNER_DIST_MPI_FILE);
    if (access(path, F_OK) != 0 && access(installed, F_OK) == 0) snprintf(path, n, "%s", installed);
}

/* dlopen()s the module and starts MPI through it */
static int start_mpi(int *argc, char ***argv, char *err, size_t errlen)
{
    char path[PATH_MAX + 64], tried[2 * PATH_MAX + 64];
    module_path(path, sizeof path, tried, sizeof tried);
    /* RTLD_GLOBAL: MPI libraries dlopen their own components, which may expect its symbols */
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(err, errlen, "MPI is wanted (an MPI launcher started this process, or PEFT_MPI=1) but its "
                 "module %s could not be loaded (looked %s): %s. It is built by `make` when an MPI is "
                 "installed (make deps); PEFT_NO_MPI=1 runs one plain process", path, tried, dlerror());
        return -1;
    }
    const struct runner_dist_ops *(*entry)(void);
    *(void **)&entry = dlsym(h, RUNNER_DIST_MPI_ENTRY);
    const struct runner_dist_ops *ops = entry ? entry() : NULL;
    if (!ops || ops->struct_size != sizeof *ops) {
        snprintf(err, errlen, "%s is not this peft's MPI module (%s; rebuild with make)", path,
                 ops ? "built from another version" : "no " RUNNER_DIST_MPI_ENTRY);
        dlclose(h);
        return -1;
    }
    if (ops->init(argc, argv, err, errlen)) return -1; /* the module stays: MPI may hold threads */
    mpi = ops;
    return 0;
}

int runner_dist_init(int *argc, char ***argv, char *err, size_t errlen)
{
    if (getenv("PEFT_NO_MPI")) {
        snprintf(library, sizeof library, "MPI (off: PEFT_NO_MPI)");
        return 0;
    }
    if (!launched_by_mpi() && !env_on("PEFT_MPI")) {
        const char *st = getenv("SLURM_STEP_NUM_TASKS");
        if (st && atol(st) > 1) {
            snprintf(err, errlen, "srun started %s tasks without an MPI plugin: use `srun --mpi=pmix` (or pmi2) so "
                     "that they share the batch, or a job array with --shard", st);
            return -1;
        }
        return 0;
    }
    return start_mpi(argc, argv, err, errlen);
}
#endif

void runner_dist_finalize(void)
{
    if (mpi) mpi->finalize();
}
int runner_dist_rank(void) { return mpi ? mpi->rank() : 0; }
int runner_dist_size(void) { return mpi ? mpi->size() : 1; }
const char *runner_dist_library(void) { return mpi ? mpi->library() : library; }
void runner_dist_abort(int code)
{
    if (mpi) mpi->abort(code);
    exit(code);
}
int runner_dist_send(int dst, int tag, int value) { return mpi ? mpi->send(dst, tag, value) : -1; }
int runner_dist_poll(int tag, int *src, int *value) { return mpi ? mpi->poll(tag, src, value) : 0; }
int runner_dist_wait(int src, int tag, int *value, int *src_out)
{
    return mpi ? mpi->wait(src, tag, value, src_out) : -1;
}
int runner_dist_gatherv(const float *send, int count, float *recv, const int *counts, int root)
{
    if (mpi) return mpi->gatherv(send, count, recv, counts, root);
    (void)counts, (void)root;
    memcpy(recv, send, (size_t)count * sizeof *send);
    return 0;
}
int runner_dist_bcast(float *buf, int count, int root) { return mpi ? mpi->bcast(buf, count, root) : 0; }
