/* bench_util.h — what the C benchmarks share (bench/lora_step.c, bench/real_shape.c): the wall
 * clock, the median of the timed steps, the process's resident set and CPU time, and dying with
 * the context's message. Header-only (each benchmark is one translation unit); BENCH_NAME (a
 * string, e.g. "libpeft lora-step") is defined before it is included, for the messages. */
#ifndef PEFT_BENCH_UTIL_H
#define PEFT_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "peft/peft.h"

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* v (n >= 1) -> its median (v unchanged) */
static inline double median(const double *v, int n)
{
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return v[0];
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return m;
}

/* the peak (peak = 1) or current resident set of this process, MB */
static inline double rss_mb(int peak)
{
    if (peak) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_maxrss / 1024.0; /* KiB on Linux */
    }
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

/* CPU time of the process, all threads (user + system), ms: the fair figure on a shared machine */
static inline double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* user + system CPU ms of all threads between two getrusage snapshots */
static inline double cpu_ms_between(const struct rusage *r0, const struct rusage *r1)
{
    return (double)(r1->ru_utime.tv_sec - r0->ru_utime.tv_sec + r1->ru_stime.tv_sec -
                    r0->ru_stime.tv_sec) * 1e3 +
           (double)(r1->ru_utime.tv_usec - r0->ru_utime.tv_usec + r1->ru_stime.tv_usec -
                    r0->ru_stime.tv_usec) / 1e3;
}

static inline void die(peft_ctx *ctx, const char *what)
{
    fprintf(stderr, BENCH_NAME ": %s: %s\n", what, ctx ? peft_errmsg(ctx) : "");
    exit(1);
}

#endif
