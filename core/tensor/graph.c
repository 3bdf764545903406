/* graph.c — the seeded RNG, persistent tensors and dtype conversion, the per-step arena, and
 * the autograd tape (peft_graph) with its reverse walk. See graph.h. */
#include "peft/graph.h"
#include "peft/quant.h"
#include "core/tensor/tape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------------------------------ */
/* RNG: xoshiro256** (Blackman & Vigna), state seeded by splitmix64                           */
/* ------------------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void peft_rng_seed(peft_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t peft_rng_next(peft_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* [0, 1) from the top 53 bits */
double peft_rng_uniform(peft_rng *r)
{
    return (double)(peft_rng_next(r) >> 11) * 0x1.0p-53;
}

/* N(0, 1), Box-Muller; the second value of each pair is cached */
double peft_rng_normal(peft_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = 1.0 - peft_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = peft_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

/* ------------------------------------------------------------------------------------------ */
/* persistent tensors and dtype conversion                                                    */
/* ------------------------------------------------------------------------------------------ */

size_t peft_dtype_size(int32_t dtype)
{
    switch (dtype) {
    case PEFT_DTYPE_F32: return 4;
    case PEFT_DTYPE_F16: return 2;
    case PEFT_DTYPE_BF16: return 2;
    case PEFT_DTYPE_I32: return 4;
    default: return 0;
    }
}

int64_t peft_shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

/* fills ndim/shape/numel; -1 on a bad shape */
static int set_shape(peft_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > PEFT_MAX_DIMS || (ndim > 0 && !shape)) return -1;
    t->ndim = ndim;
    for (int i = 0; i < PEFT_MAX_DIMS; i++) {
        if (i < ndim) {
            if (shape[i] < 0) return -1;
            t->shape[i] = shape[i];
        } else {
            t->shape[i] = 1;
        }
    }
    t->numel = peft_shape_numel(ndim, shape);
    return 0;
}

peft_tensor *peft_tensor_new(int32_t dtype, int ndim, const int64_t *shape)
{
    size_t es = peft_dtype_size(dtype);
    if (!es) return NULL;
    peft_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    if (set_shape(t, ndim, shape)) {
        free(t);
        return NULL;
    }
    t->data = calloc(t->numel ? (size_t)t->numel : 1, es);
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->flags = PEFT_T_OWNS_DATA;
    return t;
}

peft_tensor *peft_tensor_wrap(int32_t dtype, int ndim, const int64_t *shape, void *data)
{
    if (!peft_dtype_size(dtype)) return NULL;
    peft_tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->dtype = dtype;
    if (set_shape(t, ndim, shape)) {
        free(t);
        return NULL;
    }
    t->data = data;
    t->flags = 0;
    return t;
}

void peft_tensor_free(peft_tensor *t)
{
    if (!t || (t->flags & PEFT_T_ARENA)) return;
    if (t->flags & PEFT_T_OWNS_DATA) free(t->data);
    if (t->flags & PEFT_T_OWNS_GRAD) free(t->grad);
    free(t);
}

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign; /* +-0 */
        } else {         /* subnormal: renormalise */
            uint32_t e = 113; /* 127 - 15 + 1 */
            while (!(mant & 0x400u)) {
                mant <<= 1;
                e--;
            }
            mant &= 0x3ffu;
            bits = sign | (e << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

void peft_convert_to_f32(int32_t dtype, const void *src, float *dst, int64_t n)
{
    switch (dtype) {
    case PEFT_DTYPE_F32:
        if ((const void *)dst != src) memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case PEFT_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
        break;
    }
    case PEFT_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
        break;
    }
    case PEFT_DTYPE_I32: {
        const int32_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
    default:
        memset(dst, 0, (size_t)n * sizeof(float));
    }
}

void peft_tensor_to_f32(const peft_tensor *t, float *out)
{
    peft_tensor_range_to_f32(t, 0, t->numel, out); /* any storage dtype, quantized too */
}

float *peft_tensor_ensure_grad(peft_tensor *t)
{
    if (t->grad) return t->grad;
    t->grad = calloc(t->numel ? (size_t)t->numel : 1, sizeof(float));
    if (t->grad) t->flags |= PEFT_T_OWNS_GRAD;
    return t->grad;
}

void peft_tensor_zero_grad(peft_tensor *t)
{
    if (t && t->grad) memset(t->grad, 0, (size_t)t->numel * sizeof(float));
}

int peft_tensor_make_f32_owned(peft_tensor *t, void **old_data, int32_t *old_dtype,
                               int *old_owned)
{
    float *d = malloc(t->numel ? (size_t)t->numel * sizeof(float) : sizeof(float));
    if (!d) return -1;
    peft_tensor_to_f32(t, d);
    if (old_data) *old_data = t->data;
    if (old_dtype) *old_dtype = t->dtype;
    if (old_owned) *old_owned = (t->flags & PEFT_T_OWNS_DATA) ? 1 : 0;
    t->data = d;
    t->dtype = PEFT_DTYPE_F32;
    t->flags |= PEFT_T_OWNS_DATA;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* arena: chunked bump allocator, 64-byte aligned                                             */
/* ------------------------------------------------------------------------------------------ */

#define ARENA_ALIGN 64

typedef struct arena_chunk {
    struct arena_chunk *next;
    unsigned char *mem; /* ARENA_ALIGN-aligned */
    size_t cap, used;
} arena_chunk;

struct peft_arena {
    arena_chunk *head, *cur; /* chunks in allocation order; cur = the one being filled */
    size_t chunk_bytes;
    size_t used;             /* bytes handed out since the last reset (rounded) */
    size_t peak;
};

/* Chunks are mapped from the kernel, not taken from malloc: freed (when reset merges a step's
 * chunks into one block) they go back to the system at once. From malloc, 4 MB chunks come
 * from the heap once glibc's mmap threshold has grown, and freeing them left ~760 MB resident
 * beside the merged block at the Llama-3.2-1B shape (T=512). Page-aligned, so ARENA_ALIGN-aligned. */
static arena_chunk *chunk_new(size_t cap)
{
    arena_chunk *c = malloc(sizeof *c);
    if (!c) return NULL;
    void *m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(c);
        return NULL;
    }
    c->mem = m;
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

static void chunk_free_list(arena_chunk *c)
{
    while (c) {
        arena_chunk *n = c->next;
        munmap(c->mem, c->cap);
        free(c);
        c = n;
    }
}

peft_arena *peft_arena_new(size_t chunk_bytes)
{
    peft_arena *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    if (chunk_bytes < 4096) chunk_bytes = 4096;
    a->chunk_bytes = (chunk_bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    return a;
}

void *peft_arena_alloc(peft_arena *a, size_t bytes)
{
    if (bytes > SIZE_MAX - 2 * ARENA_ALIGN) return NULL;
    size_t n = bytes ? (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1) : ARENA_ALIGN;
    arena_chunk *c = a->cur;
    /* the current chunk, else a later (kept) chunk with room, else a new one */
    while (c && c->used + n > c->cap) c = c->next;
    if (!c) {
        c = chunk_new(n > a->chunk_bytes ? n : a->chunk_bytes);
        if (!c) return NULL;
        if (!a->head) {
            a->head = c;
        } else {
            arena_chunk *t = a->cur ? a->cur : a->head;
            while (t->next) t = t->next;
            t->next = c;
        }
    }
    a->cur = c;
    void *p = c->mem + c->used;
    c->used += n;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

/* Releases everything. When the step needed several chunks, they are replaced by one chunk of
 * their total size so that the next step runs from a single block; the single (largest) chunk
 * is kept otherwise. */
void peft_arena_reset(peft_arena *a)
{
    if (a->head && a->head->next) {
        size_t total = 0, big = 0;
        arena_chunk *bigc = NULL;
        for (arena_chunk *c = a->head; c; c = c->next) {
            total += c->cap;
            if (c->cap > big) {
                big = c->cap;
                bigc = c;
            }
        }
        arena_chunk *one = chunk_new(total);
        if (one) {
            chunk_free_list(a->head);
            a->head = one;
        } else { /* keep the biggest chunk only */
            arena_chunk **pp = &a->head;
            while (*pp) {
                arena_chunk *c = *pp;
                if (c != bigc) {
                    *pp = c->next;
                    munmap(c->mem, c->cap);
                    free(c);
                } else {
                    pp = &c->next;
                }
            }
        }
    }
    for (arena_chunk *c = a->head; c; c = c->next) c->used = 0;
    a->cur = a->head;
    a->used = 0;
}

void peft_arena_free(peft_arena *a)
{
    if (!a) return;
    chunk_free_list(a->head);
    free(a);
}

size_t peft_arena_peak(const peft_arena *a) { return a->peak; }

peft_arena_mark peft_arena_get_mark(const peft_arena *a)
{
    peft_arena_mark m = {a->cur, a->cur ? a->cur->used : 0, a->used};
    return m;
}

void peft_arena_rewind(peft_arena *a, peft_arena_mark m)
{
    arena_chunk *c = m.chunk;
    arena_chunk *after = c ? c->next : a->head;
    if (c) c->used = m.used;
    for (; after; after = after->next) after->used = 0;
    a->cur = c ? c : a->head;
    a->used = m.total;
}

int peft_arena_after_mark(const peft_arena *a, peft_arena_mark m, const void *p)
{
    const unsigned char *q = p;
    int past = m.chunk == NULL;
    for (const arena_chunk *c = a->head; c; c = c->next) {
        if (c == m.chunk) {
            if (q >= c->mem + m.used && q < c->mem + c->cap) return 1;
            past = 1;
            continue;
        }
        if (past && q >= c->mem && q < c->mem + c->cap) return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* graph: arena tensors + tape                                                                */
/* ------------------------------------------------------------------------------------------ */

#define GRAPH_CHUNK_BYTES ((size_t)4 << 20)

peft_graph *peft_graph_new(peft_rng *rng)
{
    peft_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->arena = peft_arena_new(GRAPH_CHUNK_BYTES);
    if (!g->arena) {
        free(g);
        return NULL;
    }
    g->rng = rng;
    return g;
}

void peft_graph_free(peft_graph *g)
{
    if (!g) return;
    for (int i = 0; i < PEFT_GRAPH_TRANSIENT_SLOTS; i++)
        if (g->transient[i]) munmap(g->transient[i], g->transient_bytes[i]);
    peft_arena_free(g->arena);
    free(g->nodes);
    free(g->free_grads);
    free(g);
}

int peft_graph_fail(peft_graph *g, int code, const char *fmt, ...)
{
    if (!g || g->err_code != PEFT_OK || code == PEFT_OK) return code; /* the first one stays */
    g->err_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->error, sizeof g->error, fmt, ap);
    va_end(ap);
    if (!g->error[0]) snprintf(g->error, sizeof g->error, "error %d (no message)", code);
    return code;
}

void peft_graph_set_error(peft_graph *g, const char *msg)
{
    peft_graph_fail(g, PEFT_EPLUGIN, "%s", msg && *msg ? msg : "a plugin failed (no message)");
}

const char *peft_graph_error(const peft_graph *g) { return g && g->err_code ? g->error : NULL; }

void peft_graph_set_recording(peft_graph *g, int on) { g->recording = on != 0; }
int peft_graph_recording(const peft_graph *g) { return g->recording; }
void peft_graph_set_training(peft_graph *g, int on) { g->training = on != 0; }
int peft_graph_training(const peft_graph *g) { return g->training; }
size_t peft_graph_tape_len(const peft_graph *g) { return g->n_nodes; }
size_t peft_graph_peak_bytes(const peft_graph *g) { return peft_arena_peak(g->arena); }

int peft_graph_errcode(const peft_graph *g) { return g ? g->err_code : PEFT_EINVAL; }

void peft_graph_reset(peft_graph *g)
{
    g->error[0] = 0;
    g->err_code = PEFT_OK;
    g->n_nodes = 0;
    g->n_free = 0;
    peft_arena_reset(g->arena);
}

peft_tensor *peft_graph_tensor_raw(peft_graph *g, int32_t dtype, int ndim, const int64_t *shape)
{
    size_t es = peft_dtype_size(dtype);
    if (!es) {
        peft_graph_fail(g, PEFT_EINVAL, "step tensor: unknown dtype code %d", (int)dtype);
        return NULL;
    }
    peft_tensor *t = peft_arena_alloc(g->arena, sizeof *t);
    if (!t) goto oom;
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    if (set_shape(t, ndim, shape)) {
        peft_graph_fail(g, PEFT_EINVAL, "step tensor: invalid shape (ndim %d)", ndim);
        return NULL;
    }
    t->data = peft_arena_alloc(g->arena, (size_t)t->numel * es);
    if (!t->data) goto oom;
    t->flags = PEFT_T_ARENA;
    return t;
oom:
    peft_graph_fail(g, PEFT_ENOMEM, "out of memory in the step arena (a tensor of %lld elements; "
                    "%zu bytes already used)", t ? (long long)t->numel : 0LL,
                    peft_arena_peak(g->arena));
    return NULL;
}

peft_tensor *peft_graph_tensor_transient(peft_graph *g, int slot, int ndim, const int64_t *shape)
{
    if (slot < 0 || slot >= PEFT_GRAPH_TRANSIENT_SLOTS) {
        peft_graph_fail(g, PEFT_EINVAL, "step tensor: no transient slot %d", slot);
        return NULL;
    }
    peft_tensor *t = peft_arena_alloc(g->arena, sizeof *t);
    if (!t) {
        peft_graph_fail(g, PEFT_ENOMEM, "out of memory in the step arena (a tensor header)");
        return NULL;
    }
    memset(t, 0, sizeof *t);
    t->dtype = PEFT_DTYPE_F32;
    if (set_shape(t, ndim, shape)) {
        peft_graph_fail(g, PEFT_EINVAL, "step tensor: invalid shape (ndim %d)", ndim);
        return NULL;
    }
    const size_t bytes = ((size_t)t->numel * sizeof(float) + 4095) & ~(size_t)4095;
    if (bytes > g->transient_bytes[slot]) { /* grown once; mapped, so given back whole */
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            peft_graph_fail(g, PEFT_ENOMEM, "out of memory for a transient step tensor of %lld "
                            "elements", (long long)t->numel);
            return NULL;
        }
        if (g->transient[slot]) munmap(g->transient[slot], g->transient_bytes[slot]);
        g->transient[slot] = m;
        g->transient_bytes[slot] = bytes;
    }
    t->data = g->transient[slot];
    t->flags = PEFT_T_ARENA;
    return t;
}

peft_tensor *peft_graph_tensor(peft_graph *g, int ndim, const int64_t *shape)
{
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, ndim, shape);
    if (t) memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

void *peft_tape_push(peft_graph *g, peft_backward_fn fn, size_t ctx_bytes)
{
    if (!g->recording) return NULL;
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
        peft_tape_node *n = realloc(g->nodes, cap * sizeof *n);
        if (!n) {
            peft_graph_fail(g, PEFT_ENOMEM, "out of memory recording the tape (%zu nodes)",
                            g->n_nodes);
            return NULL;
        }
        g->nodes = n;
        g->cap_nodes = cap;
    }
    void *ctx = peft_arena_alloc(g->arena, ctx_bytes);
    if (!ctx) {
        peft_graph_fail(g, PEFT_ENOMEM, "out of memory in the step arena recording the tape");
        return NULL;
    }
    memset(ctx, 0, ctx_bytes ? ctx_bytes : 1);
    g->nodes[g->n_nodes].fn = fn;
    g->nodes[g->n_nodes].ctx = ctx;
    g->nodes[g->n_nodes].out = NULL;
    g->n_nodes++;
    return ctx;
}

/* Persistent (non-arena) tensors — parameters, and any caller-owned tensor that requires
 * grad — get a malloc'd gradient that outlives the step; arena tensors get an arena one. */
float *peft_grad_of(peft_graph *g, peft_tensor *t)
{
    if (!t || !t->requires_grad) return NULL;
    if (t->grad) return t->grad;
    if ((t->flags & PEFT_T_PARAM) || !(t->flags & PEFT_T_ARENA)) return peft_tensor_ensure_grad(t);
    size_t bytes = (size_t)t->numel * sizeof(float);
    float *gr = NULL;
    for (size_t i = g->n_free; i-- > 0;)
        if (g->free_grads[i].bytes == bytes) { /* a dead gradient of the same size */
            gr = g->free_grads[i].buf;
            g->free_grads[i] = g->free_grads[--g->n_free];
            break;
        }
    if (!gr) gr = peft_arena_alloc(g->arena, bytes);
    if (!gr) {
        peft_graph_fail(g, PEFT_ENOMEM, "backward: out of memory in the step arena for a gradient "
                        "of %lld elements", (long long)t->numel);
        return NULL;
    }
    memset(gr, 0, bytes);
    t->grad = gr;
    return gr;
}

void peft_tape_output(peft_graph *g, peft_tensor *out)
{
    if (g->recording && g->n_nodes > 0) g->nodes[g->n_nodes - 1].out = out;
}

/* after the producer of t ran its backward, t's arena gradient is dead: keep it for reuse */
void peft_graph_recycle_grad(peft_graph *g, peft_tensor *t)
{
    if (!t || !t->grad || !(t->flags & PEFT_T_ARENA) || (t->flags & PEFT_T_PARAM)) return;
    if (g->n_free == g->cap_free) {
        size_t cap = g->cap_free ? g->cap_free * 2 : 64;
        peft_free_grad *p = realloc(g->free_grads, cap * sizeof *p);
        if (!p) return; /* not reusing it is always safe */
        g->free_grads = p;
        g->cap_free = cap;
    }
    g->free_grads[g->n_free++] = (peft_free_grad){t->grad, (size_t)t->numel * sizeof(float)};
    t->grad = NULL;
}

int peft_graph_backward(peft_graph *g, peft_tensor *loss)
{
    if (g->err_code) return g->err_code; /* the forward already failed */
    if (!loss)
        return peft_graph_fail(g, PEFT_EINVAL, "backward: no loss (the forward had no labels)");
    if (loss->numel != 1)
        return peft_graph_fail(g, PEFT_EINVAL, "backward: the loss must be a scalar, not %lld "
                               "elements", (long long)loss->numel);
    if (!loss->requires_grad)
        return peft_graph_fail(g, PEFT_EINVAL, "backward: the loss does not require grad (was the "
                               "forward recorded, with something trainable?)");
    float *dl = peft_grad_of(g, loss);
    if (!dl) return g->err_code ? g->err_code : PEFT_ENOMEM;
    dl[0] = 1.0f;
    for (size_t i = g->n_nodes; i-- > 0;) {
        g->nodes[i].fn(g, g->nodes[i].ctx);
        if (g->err_code) return g->err_code; /* a gradient is missing: never go on silently */
        if (g->nodes[i].out != loss) peft_graph_recycle_grad(g, g->nodes[i].out);
    }
    return PEFT_OK;
}
