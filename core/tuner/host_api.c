/* host_api.c — the peft_host_api table libpeft hands to tuner plugins (peft/plugin.h), and the
 * process-wide warning sink behind host->warn (core/warn.h). Every entry is filled; the table
 * is static and lives as long as the process. */
#include <cblas.h>
#include "core/ops/gemm.h"
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/io/cfg.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "core/tuner/registry.h"
#include "peft/warn.h"
#include "core/tuner/host_linalg.h"
#include "core/tuner/host_file.h"
#include "core/tuner/alloc_guard.h"
#include "core/tuner/plugin_call.h"
#include "core/tensor/graph_internal.h"
#include "core/model/site.h"
#include "core/peft/internal.h"

/* ---- warnings ---- */

/* the library never prints on its own (DESIGN.md 7): without a handler, warnings are dropped */
static void default_warning(const char *msg, void *ud)
{
    (void)msg;
    (void)ud;
}

static pthread_mutex_t warn_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*warn_fn)(const char *, void *) = default_warning;
static void *warn_ud;

void peft_set_warning_handler(void (*fn)(const char *msg, void *ud), void *ud)
{
    pthread_mutex_lock(&warn_mu);
    warn_fn = fn ? fn : default_warning;
    warn_ud = fn ? ud : NULL;
    pthread_mutex_unlock(&warn_mu);
}

void peft_warn(const char *msg)
{
    if (!msg) return;
    pthread_mutex_lock(&warn_mu);
    void (*fn)(const char *, void *) = warn_fn;
    void *ud = warn_ud;
    pthread_mutex_unlock(&warn_mu);
    fn(msg, ud); /* called unlocked: a handler may itself set a new handler */
}

/* ---- thin adapters from the ABI signatures to the core functions ---- */

/* alloc and tensor_new are bounded while the core creates an adapter (alloc_guard.h) */
static void *h_alloc(size_t n)
{
    if (peft_alloc_guard_take(n, 0, NULL)) return NULL;
    return calloc(1, n ? n : 1);
}

static void h_free(void *p)
{
    if (p) peft_alloc_guard_give(malloc_usable_size(p));
    free(p);
}

static peft_tensor *h_tensor_new(int ndim, const int64_t *shape)
{
    size_t bytes = sizeof(float);
    for (int i = 0; shape && i < ndim && i < PEFT_MAX_DIMS; i++) {
        if (shape[i] < 0) return NULL;
        if (shape[i] && bytes > SIZE_MAX / (size_t)shape[i]) { bytes = SIZE_MAX; break; }
        bytes *= (size_t)shape[i];
    }
    if (peft_alloc_guard_take(bytes, ndim, shape)) return NULL;
    return peft_tensor_new(PEFT_DTYPE_F32, ndim, shape);
}

static void h_tensor_free(peft_tensor *t)
{
    if (t && t->numel > 0) peft_alloc_guard_give((size_t)t->numel * sizeof(float));
    peft_tensor_free(t);
}

static int h_graph_training(const peft_graph *g) { return g ? g->training : 0; }
static int h_graph_recording(const peft_graph *g) { return g ? g->recording : 0; }
static peft_rng *h_graph_rng(peft_graph *g) { return g ? g->rng : NULL; }

static void h_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                    int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    ops_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

/* ---- core ops called by plugins: named on the crash record (plugin_call.h) ---- */

/* expr (a core op named name), with the name on the running plugin call's record */
#define HOST_OP(name, expr)                                                                   \
    __extension__({                                                                           \
        const char *prev__ = peft_plugin_op_enter(name);                                      \
        __typeof__(expr) r__ = (expr);                                                        \
        peft_plugin_op_leave(prev__);                                                         \
        r__;                                                                                  \
    })
#define HOST_OP_VOID(name, expr)                                                              \
    do {                                                                                      \
        const char *prev__ = peft_plugin_op_enter(name);                                      \
        expr;                                                                                 \
        peft_plugin_op_leave(prev__);                                                         \
    } while (0)
/* a graph op: also the backward nodes it records run named (peft_plugin_op_tape) */
#define HOST_GRAPH_OP(name, g, expr)                                                          \
    __extension__({                                                                           \
        const size_t n0__ = (g) ? (g)->n_nodes : 0;                                           \
        peft_tensor *t__ = HOST_OP(name, expr);                                               \
        peft_plugin_op_tape(g, n0__, name);                                                   \
        t__;                                                                                  \
    })

static peft_tensor *h_op_linear(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b,
                                int w_in_out)
{
    return HOST_GRAPH_OP("op_linear", g, op_linear(g, x, w, b, w_in_out));
}
static peft_tensor *h_op_add(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    return HOST_GRAPH_OP("op_add", g, op_add(g, a, b));
}
static peft_tensor *h_op_scale(peft_graph *g, peft_tensor *x, float s)
{
    return HOST_GRAPH_OP("op_scale", g, op_scale(g, x, s));
}
static peft_tensor *h_op_mul_lastdim(peft_graph *g, peft_tensor *x, peft_tensor *v)
{
    return HOST_GRAPH_OP("op_mul_lastdim", g, op_mul_lastdim(g, x, v));
}
static peft_tensor *h_op_dropout(peft_graph *g, peft_tensor *x, float p)
{
    return HOST_GRAPH_OP("op_dropout", g, op_dropout(g, x, p));
}
static peft_tensor *h_op_site_norm(peft_graph *g, const peft_site_info *site, peft_tensor *x,
                                   peft_tensor *weight, peft_tensor *bias)
{
    return HOST_GRAPH_OP("op_site_norm", g, peft_site_norm_op(g, site, x, weight, bias));
}
static void h_tensor_to_f32(const peft_tensor *t, float *out)
{
    HOST_OP_VOID("tensor_to_f32", peft_tensor_to_f32(t, out));
}
static void h_sgemm_named(int trans_a, int trans_b, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta, float *c,
                          int ldc)
{
    HOST_OP_VOID("sgemm", h_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}
static int h_svd(int m, int n, const float *a, float *u, float *s, float *vt)
{
    return HOST_OP("svd", peft_host_svd(m, n, a, u, s, vt));
}
static int h_qr(int m, int n, const float *a, float *q, float *r)
{
    return HOST_OP("qr", peft_host_qr(m, n, a, q, r));
}
static int h_solve(int batch, int n, int nrhs, const float *a, const float *b, float *x)
{
    return HOST_OP("solve", peft_host_solve(batch, n, nrhs, a, b, x));
}
static int h_inverse(int batch, int n, const float *a, float *inv)
{
    return HOST_OP("inverse", peft_host_inverse(batch, n, a, inv));
}
static int h_regex_fullmatch(const char *pattern, const char *str)
{
    return HOST_OP("regex_fullmatch", peft_regex_fullmatch(pattern, str));
}
static int h_safetensors_read(const char *path, const char *const *names, int n,
                              peft_tensor **out, char *err, size_t errlen)
{
    return HOST_OP("safetensors_read", peft_host_safetensors_read(path, names, n, out, err, errlen));
}

static const peft_host_api host_api = {
    .struct_size = sizeof(peft_host_api),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,

    .alloc = h_alloc,
    .free = h_free,

    .tensor_new = h_tensor_new,
    .tensor_free = h_tensor_free,
    .tensor_to_f32 = h_tensor_to_f32,

    .graph_tensor = peft_graph_tensor,
    .graph_training = h_graph_training,
    .graph_recording = h_graph_recording,
    .graph_rng = h_graph_rng,
    .tape_push = peft_plugin_tape_push, /* the closure runs named (plugin_call.h) */
    .grad_of = peft_grad_of,

    .op_linear = h_op_linear, /* core ops: named on a crash (HOST_OP) */
    .op_add = h_op_add,
    .op_scale = h_op_scale,
    .op_mul_lastdim = h_op_mul_lastdim,
    .op_dropout = h_op_dropout,

    .sgemm = h_sgemm_named,

    .cfg_type = peft_cfg_type,
    .cfg_bool = peft_cfg_bool,
    .cfg_int = peft_cfg_int,
    .cfg_real = peft_cfg_real,
    .cfg_str = peft_cfg_str,
    .cfg_list_len = peft_cfg_list_len,
    .cfg_list_str = peft_cfg_list_str,
    .cfg_pattern_real = peft_cfg_pattern_real,
    .cfg_set_bool = peft_cfg_set_bool,
    .cfg_set_int = peft_cfg_set_int,
    .cfg_set_real = peft_cfg_set_real,
    .cfg_set_str = peft_cfg_set_str,
    .cfg_set_json = peft_cfg_set_json,
    .cfg_list_int = peft_cfg_list_int,

    .rng_uniform = peft_rng_uniform,
    .rng_normal = peft_rng_normal,

    .warn = peft_warn,
    .site_weight_writable = peft_host_site_weight_writable,
    .svd = h_svd,
    .qr = h_qr,
    .regex_fullmatch = h_regex_fullmatch,
    .cfg_pattern_real_lycoris = peft_cfg_pattern_real_lycoris,
    .solve = h_solve,
    .inverse = h_inverse,
    .site_bias_trainable = peft_host_site_bias_trainable,
    .graph_set_error = peft_graph_set_error,
    .graph_error = peft_graph_error,
    .cfg_get_json = peft_cfg_get_json,
    .op_site_norm = h_op_site_norm,
    .safetensors_read = h_safetensors_read,
};

const peft_host_api *peft_host_api_get(void) { return &host_api; }
