/* prompt_harness.c — see prompt_harness.h: a prompt-learning plugin's kernels through its
 * vtable on a synthetic model, and their gradients against finite differences. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor/graph_internal.h"
#include "core/tuner/registry.h"
#include "peft/peft.h"
#include "prompt_harness.h"
#include "testutil.h"

peft_rng trng;

/* a method's adapter on a synthetic model: C = 8, 2 layers, 2 kv heads of 4 */
void harness_open(harness *h, const char *plugin, const char *config, int enc_dec)
{
    char err[512] = "";
    memset(h, 0, sizeof *h);
    h->vt = peft_registry_get(plugin, err, sizeof err);
    ck_assert_msg(h->vt, "%s", err);
    h->cfg_json = json_loads(config, 0, NULL);
    ck_assert_ptr_nonnull(h->cfg_json);
    h->cfg.obj = h->cfg_json;
    ck_assert_msg(h->vt->config_parse(&h->cfg, &h->parsed, err, sizeof err) == 0, "%s", err);
    const int64_t ws[2] = {HV, HC};
    h->we = peft_tensor_new(PEFT_DTYPE_F32, 2, ws);
    for (int64_t i = 0; i < h->we->numel; i++) peft_f32(h->we)[i] = (float)peft_rng_normal(&trng);
    h->info = (peft_prompt_info){.struct_size = sizeof(peft_prompt_info), .model_type = "test",
                                 .hidden_size = HC, .n_layers = HL, .n_kv_heads = HKV,
                                 .head_dim = HD, .is_encoder_decoder = enc_dec, .vocab_size = HV,
                                 .word_embeddings = h->we};
    h->state = h->vt->prompt_init(h->parsed, &h->cfg, &h->info, "default", &trng, err, sizeof err);
    ck_assert_msg(h->state, "%s", err);
    /* perturbed, as the fixtures are: the MLP's default init is too tame for a check */
    peft_param_ref refs[HARNESS_MAX_REFS];
    int n = h->vt->state_dict(h->state, refs, HARNESS_MAX_REFS);
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < refs[k].tensor->numel; i++)
            peft_f32(refs[k].tensor)[i] = 0.7f * (float)peft_rng_normal(&trng);
}

void harness_close(harness *h)
{
    h->vt->destroy(h->state);
    h->vt->config_free(h->parsed);
    json_decref(h->cfg_json);
    peft_tensor_free(h->we);
}

/* every output the method gives for a batch of HB: prompt tuning's (B, P, C); prefix tuning's
 * keys and values of each (stack, layer) with a prefix, in order */
int harness_outputs(harness *h, peft_graph *g, peft_tensor **outs, int max)
{
    int n = 0;
    if (h->vt->prompt_embeddings_tasks) {
        outs[n] = h->vt->prompt_embeddings_tasks(h->state, g, HB, h->task_ids);
        ck_assert_ptr_nonnull(outs[n]);
        return 1;
    }
    if (h->vt->prompt_embeddings) {
        outs[n] = h->vt->prompt_embeddings(h->state, g, HB);
        ck_assert_ptr_nonnull(outs[n]);
        return 1;
    }
    for (int stack = 0; stack < 3; stack++)
        for (int l = 0; l < HL; l++) {
            peft_tensor *k, *v;
            if (h->vt->prefix_kv(h->state, g, stack, l, HB, &k, &v) != 0) continue;
            ck_assert(k && v && n + 2 <= max);
            outs[n++] = k;
            outs[n++] = v;
        }
    return n;
}

/* L = sum_i sum(out_i * R_i), forward only, in double */
static double eval_loss(harness *h, float *const *R)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *outs[16];
    int n = harness_outputs(h, g, outs, 16);
    double L = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < outs[i]->numel; j++) L += (double)peft_f32(outs[i])[j] * R[i][j];
    peft_graph_free(g);
    return L;
}

/* the tape's gradients of every adapter tensor against central differences */
void check_grads(harness *h, const char *what)
{
    peft_param_ref refs[HARNESS_MAX_REFS];
    int np = h->vt->state_dict(h->state, refs, HARNESS_MAX_REFS);
    for (int k = 0; k < np; k++) peft_tensor_zero_grad(refs[k].tensor);
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    peft_tensor *outs[16];
    int n = harness_outputs(h, g, outs, 16);
    ck_assert_int_gt(n, 0);
    float *R[16];
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(outs[i]->requires_grad, 1);
        R[i] = malloc((size_t)outs[i]->numel * sizeof(float));
        for (int64_t j = 0; j < outs[i]->numel; j++) R[i][j] = (float)peft_rng_normal(&trng);
        memcpy(peft_grad_of(g, outs[i]), R[i], (size_t)outs[i]->numel * sizeof(float));
    }
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_graph_free(g);
    const double eps = h->eps > 0 ? h->eps : 1e-2;
    for (int k = 0; k < np; k++) {
        peft_tensor *t = refs[k].tensor;
        ck_assert_msg(t->grad, "%s: no gradient for %s", what, refs[k].memory_name);
        float *p = peft_f32(t);
        for (int64_t j = 0; j < t->numel; j++) {
            const float orig = p[j];
            p[j] = (float)(orig + eps);
            const double hp = (double)p[j] - orig, lp = eval_loss(h, R);
            p[j] = (float)(orig - eps);
            const double hm = orig - (double)p[j], lm = eval_loss(h, R);
            p[j] = orig;
            const double num = (lp - lm) / (hp + hm), a = t->grad[j];
            ck_assert_msg(fabs(num - a) <= 1e-3 + 1e-2 * fmax(fabs(num), fabs(a)),
                          "%s: d/d%s[%ld] analytic %.6g numeric %.6g", what, refs[k].memory_name,
                          (long)j, a, num);
        }
    }
    for (int i = 0; i < n; i++) free(R[i]);
}


void harness_refused(const char *config, const char *want)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *b = NULL;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/gpt2"), &b) == 0);
    peft_model *m = NULL;
    ck_assert_int_ne(peft_get_peft_model(ctx, b, config, NULL, 0, &m), 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), want), "error '%s' lacks '%s'", peft_errmsg(ctx), want);
    peft_base_model_free(b);
    peft_ctx_free(ctx);
}
