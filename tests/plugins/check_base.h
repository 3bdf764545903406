/* check_base.h — a small, correct tuner (per-output-channel scale y' = y * (1 + s), s (out)
 * trainable, mergeable) shared by the plugin-check fixtures; each fixture .c defines CHK_NAME
 * and CHK_PEFT_TYPE and at most one fault before including it:
 *   CHK_CRASH_FORWARD  forward writes through a NULL pointer (SIGSEGV)
 *   CHK_CRASH_BACKWARD the backward closure forward records writes through a NULL pointer
 *   CHK_WRONG_GRAD     backward gives twice the true gradient of s
 *   CHK_CRASH_CORE_OP  forward calls the core's host->sgemm with NULL matrices (SIGSEGV in it)
 *   CHK_CRASH_OP_BACKWARD forward computes y + y * s with host->op_mul_lastdim and host->op_add
 *                      and then drops the data pointer of that op's input: the core op's
 *                      backward (recorded for the plugin) reads NULL (SIGSEGV)
 * Without a fault it passes `peft plugin-check`. */
#ifndef PEFT_TEST_CHECK_BASE_H
#define PEFT_TEST_CHECK_BASE_H

#include <stdio.h>
#include <string.h>
#include "peft/plugin.h"

static const peft_host_api *H;

typedef struct {
    peft_tensor *s; /* (out) */
    char memory_name[160];
} chk_state;

static const char *const chk_keys[] = {"peft_type", "target_modules", "base_model_name_or_path",
                                       "inference_mode", "task_type", NULL};

static int chk_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    (void)cfg, (void)err, (void)errlen;
    static int token;
    *out = &token;
    return 0;
}
static void chk_config_free(void *parsed) { (void)parsed; }

static void *chk_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)parsed, (void)cfg, (void)rng;
    chk_state *st = H->alloc(sizeof *st);
    int64_t shape[1] = {site->out_features};
    if (!st || !(st->s = H->tensor_new(1, shape))) {
        H->free(st);
        snprintf(err, errlen, "%s: out of memory on %s", CHK_NAME, site->name);
        return NULL;
    }
    st->s->requires_grad = 1;
    st->s->flags |= PEFT_T_PARAM;
    snprintf(st->memory_name, sizeof st->memory_name, "%s_s.%s", CHK_NAME, adapter_name);
    return st;
}

typedef struct {
    peft_tensor *y, *out, *s;
    int64_t n, outf;
} chk_bwd;

/* dy (N, out) += dout * (1 + s); ds (out) += sum_n dout * y (times 2 with CHK_WRONG_GRAD) */
static void chk_backward(peft_graph *g, void *vctx)
{
    const chk_bwd *c = vctx;
    const float *dout = c->out->grad, *y = peft_f32(c->y), *s = peft_f32(c->s);
    if (!dout) return;
#ifdef CHK_CRASH_BACKWARD
    volatile float *nowhere = NULL;
    nowhere[c->outf] = 1.0f;
#endif
    float *dy = c->y->requires_grad ? H->grad_of(g, c->y) : NULL;
    float *ds = H->grad_of(g, c->s);
#ifdef CHK_WRONG_GRAD
    const float k = 2.0f;
#else
    const float k = 1.0f;
#endif
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t o = 0; o < c->outf; o++) {
            if (dy) dy[i * c->outf + o] += dout[i * c->outf + o] * (1.0f + s[o]);
            if (ds) ds[o] += k * dout[i * c->outf + o] * y[i * c->outf + o];
        }
}

/* y (..., out) -> y * (1 + s) */
static peft_tensor *chk_forward(void *state, peft_graph *g, const peft_site_info *site,
                                peft_tensor *x, peft_tensor *y)
{
    (void)x;
    chk_state *st = state;
#ifdef CHK_CRASH_FORWARD
    volatile float *nowhere = NULL;
    nowhere[site->out_features] = 1.0f;
#endif
#ifdef CHK_CRASH_CORE_OP
    float c4[4] = {0};
    const float *volatile none = NULL;
    H->sgemm(0, 0, 2, 2, 2, 1.0f, none, 2, none, 2, 0.0f, c4, 2);
#endif
#ifdef CHK_CRASH_OP_BACKWARD
    {
        peft_tensor *ys = H->graph_tensor(g, y->ndim, y->shape);
        if (!ys) return NULL;
        memcpy(ys->data, y->data, (size_t)y->numel * sizeof(float));
        peft_tensor *out = H->op_add(g, y, H->op_mul_lastdim(g, ys, st->s));
        ys->data = NULL; /* the op's backward reads its input: SIGSEGV there */
        return out;
    }
#endif
    peft_tensor *out = H->graph_tensor(g, y->ndim, y->shape);
    if (!out) return NULL;
    const int64_t outf = site->out_features, n = y->numel / outf;
    const float *yv = peft_f32(y), *s = peft_f32(st->s);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < outf; o++)
            peft_f32(out)[i * outf + o] = yv[i * outf + o] * (1.0f + s[o]);
    out->requires_grad = H->graph_recording(g) && (y->requires_grad || st->s->requires_grad);
    if (out->requires_grad) {
        chk_bwd *c = H->tape_push(g, chk_backward, sizeof *c);
        if (!c) return NULL;
        *c = (chk_bwd){y, out, st->s, n, outf};
    }
    return out;
}

static int chk_merge(void *state, const peft_site_info *site, float *weight, float *bias,
                     int sign, char *err, size_t errlen)
{
    chk_state *st = state;
    const float *s = peft_f32(st->s);
    const int64_t in = site->in_features, out = site->out_features;
    const int in_out = site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
    for (int64_t o = 0; o < out; o++) {
        const float f = 1.0f + s[o];
        if (f == 0.0f) {
            snprintf(err, errlen, "%s: factor 0 on %s", CHK_NAME, site->name);
            return -1;
        }
        const float m = sign > 0 ? f : 1.0f / f;
        for (int64_t i = 0; i < in; i++) weight[in_out ? i * out + o : o * in + i] *= m;
        if (bias) bias[o] *= m;
    }
    return 0;
}

static void chk_destroy(void *state)
{
    chk_state *st = state;
    if (!st) return;
    H->tensor_free(st->s);
    H->free(st);
}

static int chk_state_dict(void *state, peft_param_ref *out, int max)
{
    chk_state *st = state;
    if (max < 1) return 0;
    out[0] = (peft_param_ref){.saved_name = CHK_NAME "_s", .memory_name = st->memory_name,
                              .tensor = st->s, .trainable = 1};
    return 1;
}

static const char *chk_module_type(void *state)
{
    (void)state;
    return CHK_NAME ".Linear";
}

static const char *const chk_targets[] = {"c_attn", NULL};
static const char *const *chk_default_targets(const char *model_type)
{
    return model_type && !strcmp(model_type, "gpt2") ? chk_targets : NULL;
}

static const peft_tuner_vtable chk_vt = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = CHK_NAME,
    .peft_type = CHK_PEFT_TYPE,
    .prefix = CHK_NAME "_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = chk_keys,
    .default_targets = chk_default_targets,
    .config_parse = chk_config_parse,
    .config_free = chk_config_free,
    .inject = chk_inject,
    .forward = chk_forward,
    .merge = chk_merge,
    .destroy = chk_destroy,
    .state_dict = chk_state_dict,
    .module_type = chk_module_type,
    .model_class = "CheckModel",
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (!host || host->abi_major != PEFT_ABI_MAJOR) {
        snprintf(err, errlen, "%s: host ABI is not %d.x", CHK_NAME, PEFT_ABI_MAJOR);
        return NULL;
    }
    H = host;
    return &chk_vt;
}

#endif
