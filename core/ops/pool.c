/* pool.c — a small parked thread pool for the kernels (pool.h). One job at a time: the caller
 * publishes (fn, ctx, n), bumps a generation counter and wakes the workers; worker i runs slice
 * i + 1, the caller slice 0, then waits for the done count. Workers spin briefly on the
 * generation (the next kernel usually follows within microseconds), then sleep on a condition
 * variable. The thread count follows openblas_get_num_threads() at each call. */
#include "core/ops/pool.h"
#include "core/tuner/plugin_call.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

extern int openblas_get_num_threads(void);

#define POOL_MAX 64
#define SPIN_ITERS 20000

static struct {
    pthread_mutex_t job;  /* held by the caller of a parallel region */
    pthread_mutex_t mu;   /* guards the sleep of the workers */
    pthread_cond_t cv;
    atomic_uint gen;      /* bumped per job */
    atomic_int done;      /* workers finished with the current job */
    int started;          /* workers running */
    int nparts;           /* slices of the current job (caller + workers) */
    int64_t n, chunk;
    ops_range_fn fn;
    void *ctx;
    const peft_plugin_call *call; /* the caller's plugin call record: a crash in a slice names it */
} P = {.job = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static unsigned start_gen[POOL_MAX + 1]; /* the generation each worker was started at */

/* a forked child has none of the parent's workers: start afresh */
static void pool_after_fork_child(void)
{
    pthread_mutex_init(&P.job, NULL);
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
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
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&P.gen, memory_order_acquire)) == seen &&
               spins++ < SPIN_ITERS)
            cpu_relax();
        if (g == seen) {
            pthread_mutex_lock(&P.mu);
            while ((g = atomic_load(&P.gen)) == seen) pthread_cond_wait(&P.cv, &P.mu);
            pthread_mutex_unlock(&P.mu);
        }
        seen = g;
        peft_plugin_call_adopt(P.call);
        run_slice(part);
        peft_plugin_call_adopt(NULL);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
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
    pthread_mutex_lock(&P.mu);
    atomic_fetch_add_explicit(&P.gen, 1, memory_order_release);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    run_slice(0);
    /* every started worker takes part (those past nparts run nothing) */
    int spins = 0;
    while (atomic_load_explicit(&P.done, memory_order_acquire) < P.started)
        if (++spins > SPIN_ITERS) sched_yield(); else cpu_relax();
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
