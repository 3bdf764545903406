/* gen_harness.c — the generation suites' shared models, batch and reference loops
 * (gen_harness.h). */
#include "gen_harness.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "core/model/kv_cache.h"
#include "core/model/model_internal.h" /* white-box: the model's arch and prompt hooks */
#include "testutil.h"

tu_mdl tu_mdl_open(const char *root, const char *arch, const char *adapter_case)
{
    tu_mdl x = {peft_ctx_new(0), NULL, NULL, NULL};
    char rel[256];
    snprintf(rel, sizeof rel, "%s/_models/%s", root, arch);
    ck_assert_msg(peft_load_base_model(x.ctx, tu_fixture(rel), &x.base) == 0, "%s", peft_errmsg(x.ctx));
    if (adapter_case) {
        snprintf(rel, sizeof rel, "%s/%s/adapter", root, adapter_case);
        ck_assert_msg(peft_from_pretrained(x.ctx, x.base, tu_fixture(rel), "default", 0, &x.m) == 0,
                      "%s: %s", adapter_case, peft_errmsg(x.ctx));
        x.base = peft_get_base_model(x.m);
    }
    return x;
}

void tu_mdl_close(tu_mdl *x)
{
    if (x->m) peft_model_free(x->m);
    else peft_base_model_free(x->base);
    peft_ctx_free(x->ctx);
}

void tu_mdl_forward(tu_mdl *x, peft_graph *g, const peft_model_inputs *in, peft_model_outputs *o)
{
    char err[1024] = "";
    int rc = x->m ? peft_model_forward(x->m, g, in, o) : x->base->arch->forward(x->base, g, in, o, err, sizeof err);
    ck_assert_msg(rc == 0, "forward: %s", x->m ? peft_errmsg(x->ctx) : err);
    ck_assert(o->logits && o->logits->ndim == 3);
}

int tu_mdl_generate(tu_mdl *x, const peft_model_inputs *in, const peft_gen_config *c, peft_gen_output *o)
{
    return x->m ? peft_generate(x->m, in, c, NULL, o) : peft_generate_base(x->ctx, x->base, in, c, o);
}

int tu_mdl_prompt_learning(const tu_mdl *x)
{
    return x->base->prompt && (x->base->prompt->virtual_tokens || x->base->prompt->layer_prefix);
}

/* ---- the left-padded decoder batch ---------------------------------------------------------- */

const int32_t TU_PROMPT[TU_BR][TU_TP] = {{61, 111, 52, 57, 100, 74}, {0, 0, 43, 124, 73, 91}};
const int32_t TU_PMASK[TU_BR][TU_TP] = {{1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1}};
const int32_t TU_CONT[TU_BR][TU_NC] = {{5, 9, 17, 33, 64, 3, 8, 21, 34, 55, 89, 14, 23, 37},
                                       {7, 11, 13, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61}};

void tu_full_seq(int64_t n, int32_t *ids, int32_t *mask, int32_t *pos)
{
    for (int b = 0; b < TU_BR; b++) {
        int32_t ones = 0;
        for (int64_t t = 0; t < n; t++) {
            ids[b * n + t] = t < TU_TP ? TU_PROMPT[b][t] : TU_CONT[b][t - TU_TP];
            mask[b * n + t] = t < TU_TP ? TU_PMASK[b][t] : 1;
            ones += mask[b * n + t];
            pos[b * n + t] = mask[b * n + t] ? ones - 1 : 1;
        }
    }
}

double tu_tail_diff(const peft_tensor *a, const peft_tensor *b, int64_t last)
{
    const int64_t V = a->shape[2], Ta = a->shape[1], Tb = b->shape[1];
    ck_assert_int_eq(b->shape[2], V);
    ck_assert(Ta >= last && Tb >= last);
    double d = 0;
    for (int64_t r = 0; r < TU_BR; r++)
        for (int64_t t = 0; t < last; t++) {
            double e = tu_max_abs_diff(peft_f32(a) + (r * Ta + Ta - last + t) * V,
                                       peft_f32(b) + (r * Tb + Tb - last + t) * V, V);
            if (e > d) d = e;
        }
    return d;
}

double tu_cache_vs_full(tu_mdl *x, int64_t nc, const char *name)
{
    ck_assert(nc >= 2 && nc <= TU_NC);
    peft_kv_cache *c = peft_kv_cache_new(TU_BR);
    peft_graph *g = peft_graph_new(peft_ctx_rng(x->ctx)), *gf = peft_graph_new(peft_ctx_rng(x->ctx));
    int32_t ids[TU_BR * (TU_TP + TU_NC)], mask[TU_BR * (TU_TP + TU_NC)], pos[TU_BR * (TU_TP + TU_NC)];
    int32_t nids[TU_BR * 2], npos[TU_BR * 2];
    int64_t done = 0; /* tokens of each row already in the cache */
    double worst = 0;
    while (done < TU_TP + nc) {
        const int64_t tn = done == 0 ? TU_TP : done == TU_TP + 1 ? 2 : 1, n = done + tn;
        tu_full_seq(n, ids, mask, pos);
        /* the full forward over everything so far */
        peft_graph_reset(gf);
        peft_model_inputs fin = {.B = TU_BR, .T = n, .input_ids = ids, .attention_mask = mask};
        fin.position_ids = pos;
        peft_model_outputs fo;
        tu_mdl_forward(x, gf, &fin, &fo);
        /* the incremental step: only the tn new tokens (the prompt with its mask first) */
        peft_graph_reset(g);
        peft_model_inputs in = {0};
        in.B = TU_BR;
        in.T = tn;
        if (done == 0) {
            in.input_ids = &TU_PROMPT[0][0];
            in.attention_mask = &TU_PMASK[0][0];
            in.position_ids = pos; /* n == TU_TP: the prompt's positions */
        } else {
            for (int b = 0; b < TU_BR; b++)
                for (int64_t t = 0; t < tn; t++) {
                    nids[b * tn + t] = ids[b * n + done + t];
                    npos[b * tn + t] = pos[b * n + done + t];
                }
            in.input_ids = nids;
            in.position_ids = npos;
        }
        in.cache = c;
        peft_model_outputs o;
        tu_mdl_forward(x, g, &in, &o);
        /* the hooks are set by the forward: P virtual tokens (prompt tuning) or prefix entries */
        const peft_prompt_hooks *ph = x->base->prompt;
        const int64_t virt = ph && ph->n_virtual > 0 ? ph->n_virtual : 0;
        const int64_t pp = ph && ph->virtual_tokens ? virt : 0;
        ck_assert_int_eq(o.logits->shape[1], (done == 0 ? pp : 0) + tn);
        double d = tu_tail_diff(o.logits, fo.logits, o.logits->shape[1]);
        if (d > worst) worst = d;
        ck_assert_msg(d <= TU_CACHE_TOL, "%s: %lld cached + %lld new tokens: max diff %g", name,
                      (long long)done, (long long)tn, d);
        done = n;
        ck_assert_int_eq(peft_kv_cache_len(c), done + virt);
    }
    peft_graph_free(g);
    peft_graph_free(gf);
    peft_kv_cache_free(c);
    return worst;
}

void tu_greedy_reference(tu_mdl *x, int ng, const peft_model_inputs *enc, int32_t *outk)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(x->ctx));
    const int ed = x->base->is_encoder_decoder, pl = tu_mdl_prompt_learning(x);
    ck_assert(!ed || enc);
    const int64_t W = ed ? 1 + ng : TU_TP + ng;
    int32_t seq[TU_BR * (TU_TP + ng + 1)], mask[TU_BR * (TU_TP + ng)], pos[TU_BR * (TU_TP + ng)];
    int32_t ones[TU_BR];
    for (int b = 0; b < TU_BR; b++) {
        ones[b] = 0;
        if (ed) seq[b * W] = 0; /* decoder_start_token_id */
        for (int t = 0; !ed && t < TU_TP; t++) {
            seq[b * W + t] = TU_PROMPT[b][t];
            mask[b * W + t] = TU_PMASK[b][t];
            ones[b] += TU_PMASK[b][t];
            pos[b * W + t] = TU_PMASK[b][t] ? ones[b] - 1 : 1;
        }
    }
    for (int k = 0; k < ng; k++) {
        const int64_t n = ed ? 1 + k : TU_TP + k;
        int32_t ids[TU_BR * (TU_TP + ng)], m2[TU_BR * (TU_TP + ng)], p2[TU_BR * (TU_TP + ng)];
        for (int b = 0; b < TU_BR; b++)
            for (int64_t t = 0; t < n; t++) {
                ids[b * n + t] = seq[b * W + t];
                if (!ed) {
                    m2[b * n + t] = mask[b * W + t];
                    p2[b * n + t] = pos[b * W + t];
                }
            }
        peft_graph_reset(g);
        peft_model_inputs in = {0};
        in.B = TU_BR;
        in.task_ids = x->task_ids;
        if (ed) {
            in.T = enc->T;
            in.input_ids = enc->input_ids;
            in.attention_mask = enc->attention_mask;
            in.decoder_input_ids = ids;
            in.Td = n;
        } else {
            in.T = n;
            in.input_ids = ids;
            in.attention_mask = m2;
            in.position_ids = pl ? NULL : p2;
        }
        peft_model_outputs o;
        tu_mdl_forward(x, g, &in, &o);
        const int64_t Tq = o.logits->shape[1], V = o.logits->shape[2];
        for (int b = 0; b < TU_BR; b++) {
            int32_t tok = peft_gen_argmax(peft_f32(o.logits) + (b * Tq + Tq - 1) * V, V);
            outk[b * ng + k] = tok;
            if (ed) {
                seq[b * W + 1 + k] = tok;
            } else {
                seq[b * W + TU_TP + k] = tok;
                mask[b * W + TU_TP + k] = 1;
                pos[b * W + TU_TP + k] = ones[b] + k;
            }
        }
    }
    peft_graph_free(g);
}
