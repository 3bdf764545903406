/* host_api.c — the peft_host_api table libpeft hands to tuner plugins (peft/plugin.h), and the
 * process-wide warning sink behind host->warn (core/warn.h). Every entry is filled; the table
 * is static and lives as long as the process. */
#include <cblas.h>
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
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

static const peft_host_api host_api = {
    .struct_size = sizeof(peft_host_api),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,

    .alloc = h_alloc,
    .free = h_free,

    .tensor_new = h_tensor_new,
    .tensor_free = h_tensor_free,
    .tensor_to_f32 = peft_tensor_to_f32,

    .graph_tensor = peft_graph_tensor,
    .graph_training = h_graph_training,
    .graph_recording = h_graph_recording,
    .graph_rng = h_graph_rng,
    .tape_push = peft_plugin_tape_push, /* the closure runs named (plugin_call.h) */
    .grad_of = peft_grad_of,

    .op_linear = op_linear,
    .op_add = op_add,
    .op_scale = op_scale,
    .op_mul_lastdim = op_mul_lastdim,
    .op_dropout = op_dropout,

    .sgemm = h_sgemm,

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
    .svd = peft_host_svd,
    .qr = peft_host_qr,
    .regex_fullmatch = peft_regex_fullmatch,
    .cfg_pattern_real_lycoris = peft_cfg_pattern_real_lycoris,
    .solve = peft_host_solve,
    .inverse = peft_host_inverse,
    .site_bias_trainable = peft_host_site_bias_trainable,
    .graph_set_error = peft_graph_set_error,
    .graph_error = peft_graph_error,
    .cfg_get_json = peft_cfg_get_json,
    .op_site_norm = peft_site_norm_op,
    .safetensors_read = peft_host_safetensors_read,
};

const peft_host_api *peft_host_api_get(void) { return &host_api; }
