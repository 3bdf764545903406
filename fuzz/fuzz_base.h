/* fuzz_base.h — a fixture base model loaded once and reused across fuzz executions (the
 * adapter, inputs and manifest targets), instead of read from disk and built every time.
 *
 * A target takes the base with fuzz_base_get, hands it to the API under test, and gives it back
 * with fuzz_base_put once it has it again (peft_unload, or a failed peft_get_peft_model: the
 * caller keeps the base). The base is reused only when it is exactly as loaded: the same
 * parameters (tensor, dtype, bytes equal to a copy taken at load), none requiring grad or
 * holding a gradient, no adapter on any site, no prompt or attention hook, no per-row adapters,
 * no memory setting changed. Anything else (a PiSSA init rewrote a weight, modules_to_save left
 * its trained copy: PEFT's unload keeps both) frees it and the next get loads it afresh, so
 * every execution starts from the loaded model as a fresh process would.
 * Also: one BLAS thread and the kernels' pool off (openblas_set_num_threads(1)): the tiny
 * fixture shapes gain nothing from threads, and spinning workers starve under SCHED_IDLE. */
#ifndef PEFT_FUZZ_BASE_H
#define PEFT_FUZZ_BASE_H

#include "fuzz_util.h"
#include "core/model/model_internal.h"
#include "peft/graph.h"
#include "peft/peft.h"

extern void openblas_set_num_threads(int);

typedef struct fuzz_base {
    const char *dir;
    peft_base_model *m;    /* NULL: load on the next get */
    size_t n_params, n_sites;
    peft_tensor **t;       /* each parameter's tensor as loaded */
    int32_t *dtype;
    void **copy;           /* its bytes as loaded */
    size_t *bytes;
    long loads;            /* how many times it was (re)loaded */
} fuzz_base;

static void fuzz_base_forget(fuzz_base *b)
{
    for (size_t i = 0; b->copy && i < b->n_params; i++) free(b->copy[i]);
    free(b->t), free(b->dtype), free(b->copy), free(b->bytes);
    b->t = NULL, b->dtype = NULL, b->copy = NULL, b->bytes = NULL;
    b->n_params = b->n_sites = 0;
    if (b->m) peft_base_model_free(b->m);
    b->m = NULL;
}

static fuzz_base *fuzz_bases[4];

/* at exit: how often each base was loaded (a count near the executions means reuse fails) */
static void fuzz_base_report(void)
{
    for (int i = 0; i < 4 && fuzz_bases[i]; i++)
        fprintf(stderr, "fuzz: base %s loaded %ld times\n", fuzz_bases[i]->dir, fuzz_bases[i]->loads);
}

/* the base, loaded now when it is not held (aborts if the fixture does not load) */
static peft_base_model *fuzz_base_get(fuzz_base *b)
{
    if (b->m) return b->m;
    static int once;
    if (!once) openblas_set_num_threads(1), atexit(fuzz_base_report), once = 1;
    if (!b->loads)
        for (int i = 0; i < 4; i++)
            if (!fuzz_bases[i]) {
                fuzz_bases[i] = b;
                break;
            }
    peft_ctx *ctx = peft_ctx_new(0);
    if (!ctx || peft_load_base_model(ctx, b->dir, &b->m) != 0) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", b->dir, ctx ? peft_errmsg(ctx) : "no ctx");
        abort();
    }
    peft_ctx_free(ctx);
    peft_base_model *m = b->m;
    b->loads++;
    b->n_params = m->n_params;
    b->n_sites = m->n_sites;
    b->t = calloc(m->n_params, sizeof *b->t);
    b->dtype = calloc(m->n_params, sizeof *b->dtype);
    b->copy = calloc(m->n_params, sizeof *b->copy);
    b->bytes = calloc(m->n_params, sizeof *b->bytes);
    if (!b->t || !b->dtype || !b->copy || !b->bytes) abort();
    for (size_t i = 0; i < m->n_params; i++) {
        const peft_tensor *t = m->params[i].t;
        b->t[i] = m->params[i].t;
        b->dtype[i] = t->dtype;
        b->bytes[i] = (size_t)t->numel * peft_dtype_size(t->dtype);
        if (!(b->copy[i] = malloc(b->bytes[i] ? b->bytes[i] : 1))) abort();
        memcpy(b->copy[i], t->data, b->bytes[i]);
    }
    return m;
}

/* 1 when m is exactly the base as loaded (see the opening comment) */
static int fuzz_base_pristine(const fuzz_base *b, const peft_base_model *m)
{
    if (m->n_params != b->n_params || m->n_sites != b->n_sites || m->adapters_disabled ||
        m->prompt || m->attn_hook || m->row_adapter || m->gradient_checkpointing ||
        m->embed_outputs_require_grad || m->chunked_loss)
        return 0;
    for (size_t i = 0; i < m->n_sites; i++)
        if (m->sites[i]->n_chain) return 0;
    for (size_t i = 0; i < m->n_params; i++) {
        const peft_tensor *t = m->params[i].t;
        if (t != b->t[i] || t->dtype != b->dtype[i] || t->requires_grad || t->grad ||
            (size_t)t->numel * peft_dtype_size(t->dtype) != b->bytes[i] ||
            memcmp(t->data, b->copy[i], b->bytes[i]) != 0)
            return 0;
    }
    return 1;
}

/* m is the caller's again (NULL: it was consumed or freed elsewhere): kept for the next
 * execution when pristine, else freed (the next get reloads it) */
static void fuzz_base_put(fuzz_base *b, peft_base_model *m)
{
    if (m && m != b->m) {
        peft_base_model_free(m); /* not ours: cannot happen, but never leak */
        m = NULL;
    }
    if (!m) {
        b->m = NULL; /* consumed: forget without freeing */
        fuzz_base_forget(b);
        return;
    }
    if (!fuzz_base_pristine(b, m)) fuzz_base_forget(b);
}

#endif
