/* pool.c — a small parked thread pool for the kernels (pool.h). One job at a time: the caller
 * publishes (fn, ctx, n), bumps a generation counter and wakes the workers that sleep; worker
 * i runs slice i + 1, the caller slice 0, then waits for the done count. Neither side spins
 * for long, so that a pool never burns a core that another thread (OpenBLAS's, another
 * process's) needs: a worker spins SPIN_NS on the generation (the next kernel usually follows
 * within microseconds), then sleeps on a condition variable; the caller spins SPIN_NS on the
 * done count (the slices are equal, so the workers finish about when it does), then sleeps
 * until the last worker wakes it. Wakes are paid only when someone sleeps (a sleeper count and
 * a waiting flag, each checked after the other side's store: no wake is lost). The thread
 * count follows openblas_get_num_threads() at each call. */
#include "core/ops/pool.h"
#include "core/tuner/plugin_call.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

extern int openblas_get_num_threads(void);

#define POOL_MAX 64
/* how long either side spins before it sleeps. Waking a sleeper costs ~5-50 us; a kernel
 * between two GEMMs takes ~0.1-1 ms on the step's shapes, and a GEMM (OpenBLAS's threads, not
 * these) longer: spinning through a GEMM would take a core from OpenBLAS's own threads. */
#define SPIN_NS 30000

static struct {
    pthread_mutex_t job;  /* held by the caller of a parallel region */
    pthread_mutex_t mu;   /* guards the sleep of the workers and of the caller */
    pthread_cond_t cv;    /* workers: a new generation */
    pthread_cond_t done_cv; /* the caller: the last worker is done */
    atomic_uint gen;      /* bumped per job */
    atomic_int done;      /* workers finished with the current job */
    atomic_int sleepers;  /* workers asleep (or about to be) on cv */
    atomic_int waiting;   /* the caller asleep (or about to be) on done_cv */
    int started;          /* workers running */
    int nparts;           /* slices of the current job (caller + workers) */
    int64_t n, chunk;
    ops_range_fn fn;
    void *ctx;
    const peft_plugin_call *call; /* the caller's plugin call record: a crash in a slice names it */
} P = {.job = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
       .cv = PTHREAD_COND_INITIALIZER, .done_cv = PTHREAD_COND_INITIALIZER};

static unsigned start_gen[POOL_MAX + 1]; /* the generation each worker was started at */

/* a forked child has none of the parent's workers: start afresh */
static void pool_after_fork_child(void)
{
    pthread_mutex_init(&P.job, NULL);
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    pthread_cond_init(&P.done_cv, NULL);
    atomic_store(&P.sleepers, 0);
    atomic_store(&P.waiting, 0);
    P.started = 0;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void pool_init(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* spins until ready(arg) or SPIN_NS have passed (the clock read every 64 pauses); returns
 * ready(arg) */
static int spin_until(int (*ready)(const void *), const void *arg)
{
    int64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (ready(arg)) return 1;
        cpu_relax();
        if (i % 64 == 0) {
            const int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return ready(arg);
        }
    }
}

static int gen_moved(const void *seen)
{
    return atomic_load_explicit(&P.gen, memory_order_acquire) != *(const unsigned *)seen;
}

static int all_done(const void *want)
{
    return atomic_load_explicit(&P.done, memory_order_acquire) >= *(const int *)want;
}

static void run_slice(int part)
{
    if (part >= P.nparts) return;
    const int64_t lo = (int64_t)part * P.chunk;
    int64_t hi = lo + P.chunk;
    if (hi > P.n) hi = P.n;
    if (lo < hi) P.fn(P.ctx, lo, hi);
}

static void *worker(void *arg)
{
    const int part = (int)(intptr_t)arg; /* 1.. */
    unsigned seen = start_gen[part];
    for (;;) {
        if (!spin_until(gen_moved, &seen)) {
            pthread_mutex_lock(&P.mu);
            atomic_fetch_add(&P.sleepers, 1); /* before the check: the caller reads it after its bump */
            while (atomic_load(&P.gen) == seen) pthread_cond_wait(&P.cv, &P.mu);
            atomic_fetch_sub(&P.sleepers, 1);
            pthread_mutex_unlock(&P.mu);
        }
        seen = atomic_load_explicit(&P.gen, memory_order_acquire);
        const int want = P.started;
        peft_plugin_call_adopt(P.call);
        run_slice(part);
        peft_plugin_call_adopt(NULL);
        /* the last one wakes the caller if it sleeps (it sets `waiting` before it reads `done`) */
        if (atomic_fetch_add(&P.done, 1) + 1 == want && atomic_load(&P.waiting)) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_signal(&P.done_cv);
            pthread_mutex_unlock(&P.mu);
        }
    }
    return NULL;
}

static atomic_int forced_threads; /* ops_pool_set_threads; 0: follow OpenBLAS */

void ops_pool_set_threads(int t) { atomic_store(&forced_threads, t > 0 ? t : 0); }

int ops_threads(void)
{
    const int f = atomic_load(&forced_threads);
    int t = f ? f : openblas_get_num_threads();
    return t < 1 ? 1 : t > POOL_MAX ? POOL_MAX : t;
}

void ops_parallel(int64_t n, int64_t grain, ops_range_fn fn, void *ctx)
{
    ops_parallel_n(ops_threads(), n, grain, fn, ctx);
}

void ops_parallel_n(int threads, int64_t n, int64_t grain, ops_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int parts = threads < 1 ? 1 : threads > POOL_MAX ? POOL_MAX : threads;
    if ((int64_t)parts > n / grain) parts = (int)(n / grain);
    if (parts <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_once(&pool_once, pool_init);
    if (pthread_mutex_trylock(&P.job)) {
        fn(ctx, 0, n);
        return;
    }
    while (P.started < parts - 1) { /* start the workers this job needs */
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        start_gen[P.started + 1] = atomic_load(&P.gen);
        const int ok = pthread_create(&th, &at, worker, (void *)(intptr_t)(P.started + 1)) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break;
        P.started++;
    }
    if (parts > P.started + 1) parts = P.started + 1;
    P.fn = fn;
    P.ctx = ctx;
    P.call = peft_plugin_call_current();
    P.n = n;
    P.nparts = parts;
    P.chunk = (n + parts - 1) / parts;
    atomic_store(&P.done, 0);
    atomic_fetch_add(&P.gen, 1); /* publishes the job (seq_cst: ordered before the sleeper read) */
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.cv);
        pthread_mutex_unlock(&P.mu);
    }
    run_slice(0);
    /* every started worker takes part (those past nparts run nothing) */
    const int want = P.started;
    if (!spin_until(all_done, &want)) {
        pthread_mutex_lock(&P.mu);
        atomic_store(&P.waiting, 1); /* before the check: the last worker reads it after its add */
        while (atomic_load(&P.done) < want) pthread_cond_wait(&P.done_cv, &P.mu);
        atomic_store(&P.waiting, 0);
        pthread_mutex_unlock(&P.mu);
    }
    pthread_mutex_unlock(&P.job);
}

/* ---- elementwise maps ----------------------------------------------------------------------- */

typedef struct {
    ops_map1_fn k1;
    ops_map2_fn k2;
    const float *a, *b;
    float *y;
} map_job;

static void map1_range(void *p, int64_t lo, int64_t hi)
{
    const map_job *j = p;
    j->k1(j->a + lo, j->y + lo, hi - lo);
}

static void map2_range(void *p, int64_t lo, int64_t hi)
{
    const map_job *j = p;
    j->k2(j->a + lo, j->b + lo, j->y + lo, hi - lo);
}

void ops_map1(ops_map1_fn k, const float *x, float *y, int64_t n)
{
    map_job j = {.k1 = k, .a = x, .y = y};
    ops_parallel(n, OPS_ELEM_GRAIN, map1_range, &j);
}

void ops_map2(ops_map2_fn k, const float *a, const float *b, float *y, int64_t n)
{
    map_job j = {.k2 = k, .a = a, .b = b, .y = y};
    ops_parallel(n, OPS_ELEM_GRAIN, map2_range, &j);
}

/* ---- per-thread scratch --------------------------------------------------------------------- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
typedef struct { float *buf[OPS_SCRATCH_SLOTS]; size_t cap[OPS_SCRATCH_SLOTS]; } scratch_set;

static void scratch_free(void *p)
{
    scratch_set *s = p;
    for (int i = 0; s && i < OPS_SCRATCH_SLOTS; i++) free(s->buf[i]);
    free(s);
}
static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free); }

float *ops_scratch(int slot, size_t n)
{
    if (slot < 0 || slot >= OPS_SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_key_init);
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        pthread_setspecific(scratch_key, s);
    }
    if (s->cap[slot] < n) {
        float *b = realloc(s->buf[slot], (n ? n : 1) * sizeof *b);
        if (!b) return NULL;
        s->buf[slot] = b;
        s->cap[slot] = n;
    }
    return s->buf[slot];
}
