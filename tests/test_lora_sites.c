/* test_lora_sites.c — LoRA on the embedding and output sites (PEFT's lora.Embedding and a LoRA
 * on lm_head, tied or not) and the site kinds of ABI 1.4: the hf-peft-v2 cases through the
 * contract table; finite-difference gradients of the embedding kernel and merge == forward; the
 * saved base_layer.weight (PEFT's save_embedding_layers); a plugin that does not support a kind
 * refusing it, and a plugin built before ABI 1.4 never handed one; an embedding adapter in a
 * mixed model and in a per-row batch. DoRA on an embedding (PEFT's DoraEmbeddingLayer): the
 * kernel against finite differences with the norm held fixed, and the model-level table on our
 * own save (no PEFT fixture has it). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "core/tensor/graph_internal.h" /* the DoRA kernel test walks the tape */
#include "fd.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/registry.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"llama__lora_lm_head", "gpt2__lora_lm_head",
                                            "llama__lora_embedding", "gpt2__lora_embedding"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define EMB_CFG(extra) "{\"peft_type\":\"LORA\",\"r\":3,\"lora_alpha\":6,\"target_modules\":[\"embed_tokens\"]" extra "}"

/* the embedding kernel: d/dA through the column gather (repeated ids add up), d/dB, and the
 * merged table W + s (B A)^T looking up what the adapter computes */
START_TEST(grads_embedding)
{
    ps_site h; /* vocabulary 12, width 5, 10 ids (some repeated) */
    ps_open(&h, "lora", EMB_CFG(",\"init_lora_weights\":false"), PEFT_SITE_EMBEDDING, 10, 12, 5, 0.5f);
    ck_assert_int_eq(h.n_refs, 2);
    ck_assert_str_eq(h.refs[0].saved_name, "lora_embedding_A");
    ck_assert_str_eq(h.refs[0].memory_name, "lora_embedding_A.default");
    ck_assert_str_eq(h.refs[1].saved_name, "lora_embedding_B");
    ck_assert_int_eq(h.refs[0].tensor->shape[0], 3);
    ck_assert_int_eq(h.refs[0].tensor->shape[1], 12);
    ck_assert_int_eq(h.refs[1].tensor->shape[0], 5);
    ck_assert_str_eq(h.vt->module_type(h.state), "lora.Embedding");
    ps_check_grads(&h, "embedding", 0, 1, 1e-2, 2e-3);
    ps_check_grads(&h, "embedding (training: no dropout in PEFT's Embedding)", 1, 2, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* PEFT's init: A zeros, B ~ N(0, 1), so the adapter starts as the identity */
START_TEST(init_embedding)
{
    ps_site h;
    ps_open(&h, "lora", EMB_CFG(""), PEFT_SITE_EMBEDDING, 4, 12, 5, 0.0f);
    const peft_tensor *A = h.refs[0].tensor, *B = h.refs[1].tensor;
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < A->numel; i++) sa += fabs(peft_f32(A)[i]);
    for (int64_t i = 0; i < B->numel; i++) sb += peft_f32(B)[i] * peft_f32(B)[i];
    ck_assert(sa == 0.0);
    ck_assert_msg(sb / (double)B->numel > 0.3 && sb / (double)B->numel < 3.0, "B variance %g",
                  sb / (double)B->numel);
    ps_close(&h);
}
END_TEST

/* what cannot go on an embedding is refused with a message naming plugin, kind and module */
START_TEST(kinds_refused)
{
    const char *e = ps_inject_error("ia3", "{\"peft_type\":\"IA3\",\"target_modules\":[\"embed_tokens\"],"
                        "\"feedforward_modules\":[]}", PEFT_SITE_EMBEDDING, 12, 5);
    ck_assert_msg(strstr(e, "ia3") && strstr(e, "embedding") && strstr(e, "model.embed_tokens"), "%s", e);
    e = ps_inject_error("loha", "{\"peft_type\":\"LOHA\",\"target_modules\":[\"input_layernorm\"]}",
                        PEFT_SITE_NORM, 8, 8);
    ck_assert_msg(strstr(e, "loha") && strstr(e, "norm") && strstr(e, "input_layernorm"), "%s", e);
}
END_TEST

static peft_model *model_with(peft_ctx *ctx, const char *arch, const char *cfg, const char *name,
                              int mixed)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0, "%s", peft_errmsg(ctx));
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, base, cfg, name, mixed, &m) != 0) {
        peft_base_model_free(base); /* refused: the base stays ours */
        return NULL;
    }
    return m;
}

/* a plugin built against ABI 1.3 knows only linear and Conv1D sites: the host refuses to hand
 * it the embedding, naming plugin, kind and module, and still runs it on linear layers */
START_TEST(old_plugin_never_sees_new_kinds)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    const peft_tuner_vtable *vt;
    ck_assert_msg(peft_plugin_load_file(ctx, tu_build("tests/plugins/old_minor.so"), &vt) == 0, "%s",
                  peft_errmsg(ctx));
    ck_assert_int_eq(vt->abi_minor, 3);
    peft_model *m = model_with(ctx, "gpt2", "{\"peft_type\":\"TESTSCALE13\",\"target_modules\":[\"wte\"]}",
                               "default", 0);
    ck_assert_ptr_null(m);
    const char *e = peft_errmsg(ctx);
    ck_assert_msg(strstr(e, "testscale13") && strstr(e, "embedding") && strstr(e, "transformer.wte") &&
                      strstr(e, "1.3"), "%s", e);
    m = model_with(ctx, "gpt2", "{\"peft_type\":\"TESTSCALE13\",\"target_modules\":[\"c_attn\"]}", "default", 0);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

static float *logits_of(peft_model *m, const peft_inputs *in, const char *const *rows, int64_t *n)
{
    peft_graph *g = peft_graph_new(peft_ctx_rng(peft_model_ctx(m)));
    peft_model_inputs mi;
    peft_inputs_view(in, &mi);
    mi.labels = NULL;
    peft_model_outputs out;
    int rc = rows ? peft_model_forward_rows(m, g, &mi, rows, &out) : peft_model_forward(m, g, &mi, &out);
    ck_assert_msg(rc == 0, "%s", peft_errmsg(peft_model_ctx(m)));
    *n = out.logits->numel;
    float *c = malloc((size_t)*n * sizeof *c);
    memcpy(c, out.logits->data, (size_t)*n * sizeof *c);
    peft_graph_free(g);
    return c;
}

#define GPT2_EMB "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"init_lora_weights\":false,\"target_modules\":[\"wte\",\"lm_head\"]}"
#define LLAMA_EMB "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"init_lora_weights\":false,\"target_modules\":[\"embed_tokens\"]}"
#define LLAMA_LOHA "{\"peft_type\":\"LOHA\",\"r\":2,\"alpha\":4,\"init_weights\":false,\"target_modules\":[\"q_proj\",\"v_proj\"]}"

/* a mixed model (PEFT's mixed model takes LoRA anywhere LoRA goes): LoRA on the embedding with
 * LoHa on the attention; merging both equals the unmerged model, and the embedding adapter alone
 * equals the same adapter in a plain model */
START_TEST(mixed_embedding)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(7);
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft-v2/_models/llama/inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_model *m = model_with(ctx, "llama", LLAMA_EMB, "emb", 1);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    ck_assert_msg(peft_add_adapter(m, "attn", LLAMA_LOHA) == 0, "%s", peft_errmsg(ctx));
    const char *both[] = {"emb", "attn"};
    ck_assert(peft_set_adapters(m, both, 2) == 0);
    int64_t n;
    float *unmerged = logits_of(m, &in, NULL, &n);
    ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    float *merged = logits_of(m, &in, NULL, &n);
    double d = tu_max_abs_diff(unmerged, merged, n);
    ck_assert_msg(d < 1e-5, "merged mixed model differs by %g", d);
    ck_assert(peft_unmerge_adapter(m) == 0);
    const char *one[] = {"emb"};
    ck_assert(peft_set_adapters(m, one, 1) == 0);
    float *emb_only = logits_of(m, &in, NULL, &n);

    /* the same embedding adapter (same seed, so the same init) in a plain model */
    peft_ctx *ctx2 = peft_ctx_new(7);
    peft_model *p = model_with(ctx2, "llama", LLAMA_EMB, "emb", 0);
    ck_assert_msg(p, "%s", peft_errmsg(ctx2));
    float *plain = logits_of(p, &in, NULL, &n);
    d = tu_max_abs_diff(emb_only, plain, n);
    ck_assert_msg(d == 0, "mixed vs plain embedding adapter differ by %g", d);
    free(unmerged), free(merged), free(emb_only), free(plain);
    peft_model_free(p);
    peft_model_free(m);
    peft_inputs_free(&in);
    peft_ctx_free(ctx2);
    peft_ctx_free(ctx);
}
END_TEST

/* one batch, one adapter per row (PEFT's adapter_names): each row of the per-row forward equals
 * the row of a forward with that adapter active */
START_TEST(rows_embedding)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(3);
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft-v2/_models/gpt2/inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_model *m = model_with(ctx, "gpt2", GPT2_EMB, "a", 0);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    ck_assert_msg(peft_add_adapter(m, "b", GPT2_EMB) == 0, "%s", peft_errmsg(ctx));
    const char *rows[] = {"b", "a"};
    int64_t n;
    float *mixed = logits_of(m, &in, rows, &n);
    const int64_t per = n / in.B;
    for (int r = 0; r < 2; r++) {
        ck_assert(peft_set_adapter(m, rows[r]) == 0);
        float *one = logits_of(m, &in, NULL, &n);
        double d = tu_max_abs_diff(mixed + r * per, one + r * per, per);
        ck_assert_msg(d < 1e-6, "row %d (adapter %s) differs by %g", r, rows[r], d);
        free(one);
    }
    free(mixed);
    peft_model_free(m);
    peft_inputs_free(&in);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- DoRA on an embedding (PEFT 0.13.2's DoraEmbeddingLayer) ---- */

#define DV 12 /* vocabulary */
#define DD 5  /* width */
#define DR 3
#define DN 10 /* ids */
#define DS 2.0 /* lora_alpha 6 / r 3 */

/* n (DD) = ||W^T + s B A||_row in double: W (DV, DD), B (DD, DR), A (DR, DV) */
static void emb_dora_norm(ps_site *h, double *norm)
{
    const float *W = peft_f32(h->w), *A = peft_f32(ps_param(h, "lora_embedding_A")),
                *B = peft_f32(ps_param(h, "lora_embedding_B"));
    for (int o = 0; o < DD; o++) {
        double acc = 0;
        for (int v = 0; v < DV; v++) {
            double ba = 0;
            for (int k = 0; k < DR; k++) ba += (double)B[o * DR + k] * A[k * DV + v];
            const double e = W[v * DD + o] + DS * ba;
            acc += e * e;
        }
        norm[o] = sqrt(acc);
    }
}

/* L = sum(out * Rw), out = f y + f s A^T[ids] B^T, f = m / norm with the given (frozen) norm */
static double emb_dora_loss(ps_site *h, const float *y, const double *norm, const float *Rw)
{
    const float *A = peft_f32(ps_param(h, "lora_embedding_A")),
                *B = peft_f32(ps_param(h, "lora_embedding_B")),
                *M = peft_f32(ps_param(h, "lora_magnitude_vector"));
    const int32_t *ids = h->x->data;
    double L = 0;
    for (int i = 0; i < DN; i++)
        for (int o = 0; o < DD; o++) {
            double lora = 0;
            for (int k = 0; k < DR; k++) lora += (double)A[k * DV + ids[i]] * B[o * DR + k];
            const double f = M[o] / norm[o];
            L += (f * y[i * DD + o] + f * DS * lora) * Rw[i * DD + o];
        }
    return L;
}

/* the magnitude's init m = ||W^T + s B A||_row; the kernel against a double reference; the
 * gradients of y, lora_embedding_A/B and the magnitude against central differences with the
 * norm held fixed (PEFT detaches it); merge == forward and unmerge restores the table */
START_TEST(dora_embedding_kernel)
{
    ps_site h;
    ps_open(&h, "lora", EMB_CFG(",\"use_dora\":true,\"init_lora_weights\":false"),
            PEFT_SITE_EMBEDDING, DN, DV, DD, 0.0f);
    ck_assert_int_eq(h.n_refs, 3);
    ck_assert_str_eq(h.refs[2].saved_name, "lora_magnitude_vector");
    ck_assert_str_eq(h.refs[2].memory_name, "lora_magnitude_vector.default.weight");
    peft_tensor *M = ps_param(&h, "lora_magnitude_vector");
    ck_assert_int_eq(M->numel, DD);
    double norm[DD];
    emb_dora_norm(&h, norm);
    for (int o = 0; o < DD; o++)
        ck_assert_msg(fabs(peft_f32(M)[o] - norm[o]) <= 1e-5 * norm[o], "m[%d] %g, norm %g", o,
                      peft_f32(M)[o], norm[o]);
    for (int o = 0; o < DD; o++) peft_f32(M)[o] *= (float)(1.0 + 0.3 * peft_rng_normal(&fd_rng));

    const int64_t ys[3] = {1, DN, DD};
    peft_tensor *y = fd_rand_tensor(3, ys, 1.0f, 1);
    float Rw[DN * DD];
    for (int i = 0; i < DN * DD; i++) Rw[i] = (float)peft_rng_normal(&fd_rng);
    peft_rng gr;
    peft_rng_seed(&gr, 1);
    peft_graph *g = peft_graph_new(&gr);
    peft_graph_set_recording(g, 1);
    peft_tensor *out = h.vt->forward(h.state, g, &h.site, h.x, y);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(out->requires_grad, 1);
    double Lk = 0;
    for (int i = 0; i < DN * DD; i++) Lk += (double)peft_f32(out)[i] * Rw[i];
    const double Lr = emb_dora_loss(&h, peft_f32(y), norm, Rw);
    ck_assert_msg(fabs(Lk - Lr) <= 1e-4 * (1 + fabs(Lr)), "forward %g, reference %g", Lk, Lr);
    memcpy(peft_grad_of(g, out), Rw, sizeof Rw);
    for (size_t k = g->n_nodes; k-- > 0;) g->nodes[k].fn(g, g->nodes[k].ctx);
    peft_graph_free(g);

    peft_tensor *ts[4] = {y, ps_param(&h, "lora_embedding_A"), ps_param(&h, "lora_embedding_B"), M};
    const char *names[4] = {"y", "lora_embedding_A", "lora_embedding_B", "magnitude"};
    const double eps = 1e-3;
    for (int t = 0; t < 4; t++) {
        ck_assert_msg(ts[t]->grad != NULL, "no gradient for %s", names[t]);
        float *p = peft_f32(ts[t]);
        for (int64_t j = 0; j < ts[t]->numel; j++) {
            const float o = p[j];
            p[j] = (float)(o + eps);
            const double hp = (double)p[j] - o, lp = emb_dora_loss(&h, peft_f32(y), norm, Rw);
            p[j] = (float)(o - eps);
            const double hm = o - (double)p[j], lm = emb_dora_loss(&h, peft_f32(y), norm, Rw);
            p[j] = o;
            const double num = (lp - lm) / (hp + hm), ana = ts[t]->grad[j];
            ck_assert_msg(fabs(num - ana) <= 1e-4 + 1e-3 * fabs(num),
                          "d/d%s[%ld]: analytic %.7g, numeric %.7g", names[t], (long)j, ana, num);
        }
        peft_tensor_zero_grad(ts[t]);
    }
    peft_tensor_free(y);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* the model-level table on our own save (PEFT has no fixture for it): LLaMA's embed_tokens and
 * GPT-2's tied wte with use_dora; merged == unmerged on the untied table (PEFT 0.13.2's
 * Embedding.merge drops the magnitude: a documented departure; a tied table's merge changes
 * lm_head too, as for plain LoRA), unmerge and unload restore the base bit-exactly, disabled ==
 * base, PEFT's saved keys, and a save/load round trip gives the same logits */
static const char *const dora_emb_cases[][2] = {
    {"llama", "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"use_dora\":true,"
              "\"init_lora_weights\":false,\"target_modules\":[\"embed_tokens\",\"q_proj\"]}"},
    {"gpt2", "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":4,\"use_dora\":true,"
             "\"init_lora_weights\":false,\"target_modules\":[\"wte\"]}"},
};

START_TEST(dora_embedding_model)
{
    peft_set_warning_handler(tu_quiet, NULL);
    const char *arch = dora_emb_cases[_i][0], *cfg = dora_emb_cases[_i][1];
    peft_ctx *ctx = peft_ctx_new(11);
    peft_inputs in;
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s/inputs.json", arch);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_ctx *bctx = peft_ctx_new(0);
    peft_model *base = model_with(bctx, arch, "{\"peft_type\":\"LORA\",\"r\":2,"
                                  "\"target_modules\":[\"q_proj\",\"c_attn\"]}", "default", 0);
    ck_assert_msg(base, "%s", peft_errmsg(bctx));
    ck_assert(peft_disable_adapter(base) == 0);
    int64_t n;
    float *want_base = logits_of(base, &in, NULL, &n);
    peft_model *m = model_with(ctx, arch, cfg, "default", 0);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    float *unmerged = logits_of(m, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(unmerged, want_base, n) > 1e-3, "the adapter changes nothing");
    /* disabled == base */
    ck_assert(peft_disable_adapter(m) == 0);
    float *disabled = logits_of(m, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(disabled, want_base, n) == 0, "disabled differs from the base");
    ck_assert(peft_enable_adapter(m) == 0);
    /* the saved keys (PEFT's: no ".weight" on the magnitude) and the round trip */
    peft_state_dict *sd;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    const char *emb = strcmp(arch, "gpt2") ? "base_model.model.model.embed_tokens."
                                           : "base_model.model.transformer.wte.";
    int found = 0;
    for (size_t i = 0; i < sd->n; i++) {
        char key[256];
        snprintf(key, sizeof key, "%slora_magnitude_vector", emb);
        found += strcmp(sd->names[i], key) == 0;
    }
    ck_assert_msg(found == 1, "no %slora_magnitude_vector saved", emb);
    peft_state_dict_free(sd);
    char *dir = tu_tmpdir();
    ck_assert_msg(peft_save_pretrained(m, dir, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    peft_ctx *lctx = peft_ctx_new(0);
    peft_base_model *lb;
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    ck_assert(peft_load_base_model(lctx, tu_fixture(rel), &lb) == 0);
    peft_model *l;
    ck_assert_msg(peft_from_pretrained(lctx, lb, dir, NULL, 0, &l) == 0, "%s", peft_errmsg(lctx));
    float *loaded = logits_of(l, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(loaded, unmerged, n) == 0, "loaded adapter differs by %g",
                  tu_max_abs_diff(loaded, unmerged, n));
    /* merged == unmerged; unmerge restores the base bit-exactly */
    ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    float *merged = logits_of(m, &in, NULL, &n);
    double d = tu_max_abs_diff(merged, unmerged, n);
    if (_i == 0) /* untied: the merge is exact */
        ck_assert_msg(d < 1e-5, "%s: merged differs from unmerged by %g", arch, d);
    else /* GPT-2's wte is lm_head too: the merge changes both (README, as PEFT for ties) */
        ck_assert_msg(d > 1e-3, "%s: a merge into the tied table left lm_head alone", arch);
    ck_assert(peft_unmerge_adapter(m) == 0);
    float *again = logits_of(m, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(again, unmerged, n) == 0, "unmerge did not restore the model");
    /* unload after a merge: the base bit-exactly */
    ck_assert_msg(peft_merge_adapter(l, NULL, 0, 0) == 0, "%s", peft_errmsg(lctx));
    peft_base_model *ub;
    ck_assert(peft_unload(l, &ub) == 0);
    peft_graph *g = peft_graph_new(peft_ctx_rng(lctx));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    mi.labels = NULL;
    peft_model_outputs bo;
    ck_assert_msg(peft_base_model_forward(ub, g, &mi, &bo) == 0, "%s", peft_graph_error(g));
    ck_assert_msg(tu_max_abs_diff(peft_f32(bo.logits), want_base, n) == 0,
                  "unload did not restore the base");
    peft_graph_free(g);
    peft_base_model_free(ub);
    free(want_base), free(unmerged), free(disabled), free(loaded), free(merged), free(again);
    tu_rmtree(dir);
    free(dir);
    peft_model_free(m);
    peft_model_free(base);
    peft_inputs_free(&in);
    peft_ctx_free(lctx);
    peft_ctx_free(bctx);
    peft_ctx_free(ctx);
}
END_TEST

static char warned[2048];
static void keep_warning(const char *msg, void *ud)
{
    (void)ud;
    if (!strstr(warned, "tie_word_embeddings")) snprintf(warned, sizeof warned, "%s", msg);
}

/* GPT-2 ties lm_head to wte: LoRA on both writes both deltas into the one shared tensor when
 * merged (as PEFT does, with PEFT's warnings), and unmerging gives the loaded weight back
 * bit-exactly whichever site merged first */
START_TEST(tied_merge)
{
    peft_ctx *ctx = peft_ctx_new(5);
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft-v2/_models/gpt2/inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    warned[0] = 0;
    peft_set_warning_handler(keep_warning, NULL);
    peft_model *m = model_with(ctx, "gpt2", GPT2_EMB, "default", 0);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    ck_assert_msg(strstr(warned, "tied_target_modules"), "no tied-weights warning at injection: %s", warned);
    int64_t n;
    ck_assert(peft_disable_adapter(m) == 0);
    float *base0 = logits_of(m, &in, NULL, &n);
    ck_assert(peft_enable_adapter(m) == 0);
    warned[0] = 0;
    ck_assert_msg(peft_merge_adapter(m, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    ck_assert_msg(strstr(warned, "tie_word_embeddings"), "no tied-weights warning at merge");
    float *merged = logits_of(m, &in, NULL, &n);
    ck_assert(peft_unmerge_adapter(m) == 0);
    ck_assert(peft_disable_adapter(m) == 0);
    float *base1 = logits_of(m, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(base0, base1, n) == 0, "unmerge did not restore the tied weight");
    ck_assert(peft_enable_adapter(m) == 0);
    /* merged one at a time, lm_head first (it keeps the loaded data, then hands it to wte when
     * it unmerges first), then unmerged together */
    ck_assert(peft_add_adapter(m, "b", "{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false,"
                                        "\"target_modules\":[\"wte\"]}") == 0);
    ck_assert(peft_add_adapter(m, "c", "{\"peft_type\":\"LORA\",\"r\":2,\"init_lora_weights\":false,"
                                        "\"target_modules\":[\"lm_head\"]}") == 0);
    const char *one[] = {"c"}, *two[] = {"b"};
    ck_assert(peft_merge_adapter(m, one, 1, 0) == 0);
    ck_assert(peft_merge_adapter(m, two, 1, 0) == 0);
    ck_assert(peft_unmerge_adapter(m) == 0);
    ck_assert(peft_disable_adapter(m) == 0);
    float *base2 = logits_of(m, &in, NULL, &n);
    ck_assert_msg(tu_max_abs_diff(base0, base2, n) == 0, "unmerge did not restore the tied weight");
    free(base0), free(base1), free(base2), free(merged);
    peft_model_free(m);
    peft_inputs_free(&in);
    peft_ctx_free(ctx);
    peft_set_warning_handler(NULL, NULL);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 11);
    Suite *s = suite_create("lora_sites");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernel");
    tcase_add_test(tk, grads_embedding);
    tcase_add_test(tk, init_embedding);
    tcase_add_test(tk, kinds_refused);
    tcase_add_test(tk, dora_embedding_kernel);
    tcase_add_loop_test(tk, dora_embedding_model, 0, 2);
    tcase_add_test(tk, old_plugin_never_sees_new_kinds);
    tcase_add_test(tk, mixed_embedding);
    tcase_add_test(tk, rows_embedding);
    tcase_add_test(tk, tied_merge);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
