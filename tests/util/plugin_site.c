/* plugin_site.c — a tuner plugin on one synthetic site: linear, Conv1D, embedding or norm
 * (plugin_site.h). */
#include "plugin_site.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/site.h"
#include "core/tuner/registry.h"
#include "fd.h"
#include "core/ops/ops.h"
#include "testutil.h"

static int in_out(const ps_site *h) { return h->site.kind == PEFT_SITE_CONV1D; }

static void ps_open_any(ps_site *h, const char *plugin, const char *config, int kind, int64_t n,
                        int64_t in, int64_t out, float param_scale, int norm_type);

void ps_open(ps_site *h, const char *plugin, const char *config, int kind, int64_t n, int64_t in,
             int64_t out, float param_scale)
{
    ps_open_any(h, plugin, config, kind, n, in, out, param_scale, 0);
}

void ps_open_norm(ps_site *h, const char *plugin, const char *config, int norm_type, int64_t n,
                  int64_t c, float param_scale)
{
    ps_open_any(h, plugin, config, PEFT_SITE_NORM, n, c, c, param_scale, norm_type);
}

/* the site's module name per kind */
static const char *site_name(int kind)
{
    switch (kind) {
    case PEFT_SITE_EMBEDDING: return "model.embed_tokens";
    case PEFT_SITE_NORM: return "model.layers.0.input_layernorm";
    default: return "model.layers.0.self_attn.q_proj";
    }
}

static void ps_open_any(ps_site *h, const char *plugin, const char *config, int kind, int64_t n,
                        int64_t in, int64_t out, float param_scale, int norm_type)
{
    char err[512] = "";
    memset(h, 0, sizeof *h);
    h->vt = peft_registry_get(plugin, err, sizeof err);
    ck_assert_msg(h->vt, "%s", err);
    h->cfg_json = json_loads(config, 0, NULL);
    ck_assert_msg(h->cfg_json, "bad JSON: %s", config);
    h->cfg.obj = h->cfg_json;
    ck_assert_msg(h->vt->config_parse(&h->cfg, &h->parsed, err, sizeof err) == 0, "%s", err);
    const int rows_first = kind == PEFT_SITE_CONV1D || kind == PEFT_SITE_EMBEDDING;
    const int64_t ws[2] = {rows_first ? in : out, rows_first ? out : in};
    const int64_t bs[1] = {out}, xs[2] = {n, in};
    if (kind == PEFT_SITE_NORM) { /* weight near 1 (Gemma's near 0), bias for LayerNorm only */
        h->w = fd_rand_tensor(1, bs, 0.3f, 0);
        for (int64_t j = 0; j < out; j++) peft_f32(h->w)[j] += norm_type == PEFT_NORM_RMS_1P ? 0.0f : 1.0f;
        h->b = norm_type == PEFT_NORM_LAYER ? fd_rand_tensor(1, bs, 0.5f, 0) : NULL;
    } else {
        h->w = fd_rand_tensor(2, ws, 0.5f, 0);
        h->b = kind == PEFT_SITE_EMBEDDING ? NULL : fd_rand_tensor(1, bs, 0.5f, 0);
    }
    if (kind == PEFT_SITE_EMBEDDING) { /* token ids (1, n), some repeated */
        h->x = peft_tensor_new(PEFT_DTYPE_I32, 2, (int64_t[]){1, n});
        for (int64_t i = 0; i < n; i++) ((int32_t *)h->x->data)[i] = (int32_t)((i * 7 + 3) % in);
    } else {
        h->x = fd_rand_tensor(2, xs, 1.0f, 1);
    }
    h->site = (peft_site_info){.struct_size = sizeof(peft_site_info), .kind = kind,
                               .name = site_name(kind), .model_type = "llama",
                               .in_features = in, .out_features = out,
                               .fan_in_fan_out = kind == PEFT_SITE_CONV1D, .layer_index = 0,
                               .weight = h->w, .bias = h->b, .norm_type = norm_type,
                               .norm_eps = 1e-5f};
    h->state = h->vt->inject(h->parsed, &h->cfg, &h->site, "default", &fd_rng, err, sizeof err);
    ck_assert_msg(h->state, "%s", err);
    h->n_refs = h->vt->state_dict(h->state, h->refs, PS_MAX_REFS);
    ck_assert_int_gt(h->n_refs, 0);
    if (param_scale != 0)
        for (int i = 0; i < h->n_refs; i++) {
            if (!h->refs[i].trainable) continue;
            peft_tensor *t = h->refs[i].tensor;
            for (int64_t j = 0; j < t->numel; j++)
                peft_f32(t)[j] = param_scale * (float)peft_rng_normal(&fd_rng);
        }
}

void ps_close(ps_site *h)
{
    h->vt->destroy(h->state);
    h->vt->config_free(h->parsed);
    json_decref(h->cfg_json);
    peft_tensor_free(h->w);
    peft_tensor_free(h->b);
    peft_tensor_free(h->x);
}

peft_tensor *ps_param(ps_site *h, const char *saved)
{
    for (int i = 0; i < h->n_refs; i++)
        if (!strcmp(h->refs[i].saved_name, saved)) return h->refs[i].tensor;
    ck_abort_msg("no state-dict entry %s", saved);
    return NULL;
}

/* the base module of the site's kind with weight w, bias b */
static peft_tensor *base_out(ps_site *h, peft_graph *g, peft_tensor *w, peft_tensor *b)
{
    int32_t bad = 0;
    switch (h->site.kind) {
    case PEFT_SITE_EMBEDDING: return op_embedding(g, w, h->x->data, 1, h->x->numel, &bad);
    case PEFT_SITE_NORM: return peft_site_norm_op(g, &h->site, h->x, w, b);
    default: return op_linear(g, h->x, w, b, in_out(h));
    }
}

peft_tensor *ps_forward(ps_site *h, peft_graph *g)
{
    peft_tensor *y = base_out(h, g, h->w, h->b);
    ck_assert_ptr_nonnull(y);
    peft_tensor *out = h->vt->forward(h->state, g, &h->site, h->x, y);
    ck_assert_ptr_nonnull(out);
    return out;
}

static peft_tensor *build(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)in;
    return ps_forward((ps_site *)ud, g);
}

void ps_check_grads(ps_site *h, const char *what, int training, uint64_t seed, double rtol,
                    double atol)
{
    peft_tensor *ts[PS_MAX_REFS + 1];
    int n = 0;
    if (h->site.kind != PEFT_SITE_EMBEDDING) ts[n++] = h->x; /* token ids have no gradient */
    for (int i = 0; i < h->n_refs; i++)
        if (h->refs[i].trainable) ts[n++] = h->refs[i].tensor;
    const fd_opts o = {.graph_seed = seed, .training = training};
    fd_check_grads(&o, what, build, ts, n, h, 1e-2, rtol, atol);
    for (int i = 0; i < n; i++)
        if (ts[i]->grad) peft_tensor_zero_grad(ts[i]);
}

void ps_check_merge(ps_site *h, double tol)
{
    char err[512] = "";
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *out = ps_forward(h, g);
    const int64_t n = out->numel;
    float *want = malloc((size_t)n * sizeof *want);
    memcpy(want, out->data, (size_t)n * sizeof *want);
    peft_tensor *w0 = peft_tensor_new(PEFT_DTYPE_F32, h->w->ndim, h->w->shape);
    peft_tensor *b0 = h->b ? peft_tensor_new(PEFT_DTYPE_F32, 1, h->b->shape) : NULL;
    memcpy(w0->data, h->w->data, (size_t)h->w->numel * sizeof(float));
    if (b0) memcpy(b0->data, h->b->data, (size_t)h->b->numel * sizeof(float));
    float *bd = h->b ? peft_f32(h->b) : NULL;
    ck_assert_msg(h->vt->merge(h->state, &h->site, peft_f32(h->w), bd, 1, err, sizeof err) == 0,
                  "%s", err);
    peft_graph_reset(g);
    peft_tensor *merged = base_out(h, g, h->w, h->b);
    double d = tu_max_abs_diff(want, peft_f32(merged), n);
    ck_assert_msg(d <= tol, "merged layer differs from the adapter's forward by %g", d);
    if (h->site.kind == PEFT_SITE_NORM) { /* swapped in; the host restores the weight itself */
        memcpy(h->w->data, w0->data, (size_t)h->w->numel * sizeof(float));
        if (b0) memcpy(h->b->data, b0->data, (size_t)h->b->numel * sizeof(float));
    } else {
        ck_assert_msg(h->vt->merge(h->state, &h->site, peft_f32(h->w), bd, -1, err, sizeof err) == 0,
                      "%s", err);
    }
    d = fmax(tu_max_abs_diff(peft_f32(w0), peft_f32(h->w), w0->numel),
             b0 ? tu_max_abs_diff(peft_f32(b0), peft_f32(h->b), b0->numel) : 0.0);
    ck_assert_msg(d <= tol, "unmerge left the weight off by %g", d);
    memcpy(h->w->data, w0->data, (size_t)h->w->numel * sizeof(float));
    if (b0) memcpy(h->b->data, b0->data, (size_t)h->b->numel * sizeof(float));
    peft_tensor_free(w0);
    peft_tensor_free(b0);
    free(want);
    peft_graph_free(g);
}

const char *ps_inject_error(const char *plugin, const char *config, int kind, int64_t in,
                            int64_t out)
{
    static char err[512];
    err[0] = 0;
    const peft_tuner_vtable *vt = peft_registry_get(plugin, err, sizeof err);
    ck_assert_msg(vt, "%s", err);
    json_t *j = json_loads(config, 0, NULL);
    ck_assert_msg(j, "bad JSON: %s", config);
    peft_cfg cfg = {.obj = j};
    void *parsed = NULL;
    if (vt->config_parse(&cfg, &parsed, err, sizeof err) == 0) {
        const int rows_first = kind == PEFT_SITE_CONV1D || kind == PEFT_SITE_EMBEDDING;
        const int64_t ws[2] = {rows_first ? in : out, rows_first ? out : in};
        peft_tensor *w = kind == PEFT_SITE_NORM ? peft_tensor_new(PEFT_DTYPE_F32, 1, ws + 1)
                                                : peft_tensor_new(PEFT_DTYPE_F32, 2, ws);
        peft_site_info site = {.struct_size = sizeof site, .kind = kind,
                               .name = site_name(kind), .model_type = "llama",
                               .in_features = in, .out_features = out,
                               .fan_in_fan_out = kind == PEFT_SITE_CONV1D, .layer_index = 0,
                               .weight = w};
        void *st = vt->inject(parsed, &cfg, &site, "default", &fd_rng, err, sizeof err);
        ck_assert_msg(!st, "%s: %s injected but should have failed", plugin, config);
        vt->config_free(parsed);
        peft_tensor_free(w);
    }
    json_decref(j);
    ck_assert_msg(err[0], "%s: failed without a message", plugin);
    return err;
}
