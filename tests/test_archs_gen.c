/* test_archs_gen.c — the LLaMA-family architectures of hf-peft-v2 (Qwen2, Mistral, Gemma,
 * Gemma2, Phi-3, Llama-3 RoPE) beyond the contract table:
 *   1. generation with the KV cache: every incremental step's logits equal a full forward over
 *      the sequence so far (left-padded batch, HF's positions; sequences longer than Mistral's
 *      and Gemma2's sliding windows, Gemma2's soft-capping), bare and with the fixtures' LoRA,
 *      prefix and prompt adapters; greedy generation (cache and no cache) equals the argmax of
 *      full forwards step by step (no fixture holds greedy ids);
 *   2. what PEFT 0.13.2 refuses (INDEX.json "skipped"): a clear error here too;
 *   3. parameter counts from config.json alone (peft info --config) equal transformers';
 *   4. the ...ForSequenceClassification heads of Mistral, Gemma, Gemma2 and Phi-3 (random
 *      weights): score applied to the last hidden state of the token before the first pad, no
 *      soft-capping (Gemma2 caps the causal LM's logits only), the CE loss. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "core/model/kv_cache.h"
#include "peft/generate.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"
#include "gen_harness.h"

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

static const char *const CASES[][2] = {
    {"qwen2", NULL},      {"qwen2", "qwen2__lora_default"},   {"qwen2", "qwen2__prefix"},
    {"qwen2", "qwen2__prompt"},
    {"mistral", NULL},    {"mistral", "mistral__lora_default"}, {"mistral", "mistral__prefix"},
    {"mistral", "mistral__prompt"},
    {"gemma", NULL},      {"gemma", "gemma__lora_default"},   {"gemma", "gemma__prefix_tokendim"},
    {"gemma", "gemma__prompt"},
    {"gemma2", NULL},     {"gemma2", "gemma2__lora_alllinear"}, {"gemma2", "gemma2__prompt"},
    {"phi3", NULL},       {"phi3", "phi3__lora_attn"},        {"phi3", "phi3__prefix"},
    {"phi3", "phi3__prompt"},
    {"llama3rope", NULL}, {"llama3rope", "llama3rope__lora_alllinear"},
    {"llama3rope", "llama3rope__prefix"}, {"llama3rope", "llama3rope__prompt"},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])
#define CASE_NAME(i) (CASES[i][1] ? CASES[i][1] : CASES[i][0])

/* incremental steps: the prompt, then 1, 2 (two tokens in one call), 1, 1, ... of 10 new tokens */
START_TEST(cache_matches_full)
{
    tu_mdl x = tu_mdl_open("hf-peft-v2", CASES[_i][0], CASES[_i][1]);
    double worst = tu_cache_vs_full(&x, 10, CASE_NAME(_i));
    if (getenv("TU_VERBOSE"))
        printf("cache vs full %s: max diff %.3g over %d positions\n", CASE_NAME(_i), worst, TU_TP + 10);
    tu_mdl_close(&x);
}
END_TEST

#define NG 10

START_TEST(greedy_equals_full_forwards)
{
    tu_mdl x = tu_mdl_open("hf-peft-v2", CASES[_i][0], CASES[_i][1]);
    int32_t ref[TU_BR * NG];
    tu_greedy_reference(&x, NG, NULL, ref);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    peft_model_inputs in = {.B = TU_BR, .T = TU_TP, .input_ids = &TU_PROMPT[0][0], .attention_mask = &TU_PMASK[0][0]};
    for (int cache = 1; cache >= 0; cache--) {
        c.use_cache = cache;
        peft_gen_output o;
        int rc = tu_mdl_generate(&x, &in, &c, &o);
        ck_assert_msg(rc == 0, "%s", peft_errmsg(x.ctx));
        ck_assert_int_eq(o.n_new, NG);
        for (int i = 0; i < TU_BR * NG; i++)
            ck_assert_msg(o.tokens[i] == ref[i], "%s cache %d: row %d token %d: %d, reference %d",
                          CASE_NAME(_i), cache, i / NG, i % NG, o.tokens[i], ref[i]);
        peft_gen_output_free(&o);
    }
    tu_mdl_close(&x);
}
END_TEST

/* ---- what PEFT refuses ------------------------------------------------------------------------ */

/* get_peft_model on a v2 model with config `cfg` must fail with a message holding each needle */
static void refused(const char *arch, const char *cfg, const char *n1, const char *n2)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    char rel[128];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", arch);
    ck_assert(peft_load_base_model(ctx, tu_fixture(rel), &base) == 0);
    peft_model *m = NULL;
    int rc = peft_get_peft_model(ctx, base, cfg, NULL, 0, &m);
    ck_assert_msg(rc != 0 && !m, "%s: %s was accepted", arch, cfg);
    peft_base_model_free(base); /* refused: the base stays ours */
    const char *e = peft_errmsg(ctx);
    if (getenv("TU_VERBOSE")) printf("%s refused: %s\n", arch, e);
    ck_assert_has(e, n1);
    if (n2) ck_assert_has(e, n2);
    peft_ctx_free(ctx);
}

START_TEST(peft_refusals)
{
    /* every "skipped" entry of these architectures is one of the three below */
    json_t *idx = json_load_file(tu_fixture("hf-peft-v2/INDEX.json"), 0, NULL);
    const char *k;
    json_t *v;
    int n = 0;
    json_object_foreach(json_object_get(idx, "skipped"), k, v)
        if (!strncmp(k, "gemma", 5) || !strncmp(k, "phi3", 4) || !strncmp(k, "qwen2", 5) ||
            !strncmp(k, "mistral", 7) || !strncmp(k, "llama3rope", 10)) {
            ck_assert_msg(!strcmp(k, "gemma__prefix") || !strcmp(k, "gemma2__prefix") ||
                              !strcmp(k, "phi3__lora_default"), "untested refusal %s", k);
            n++;
        }
    ck_assert_int_eq(n, 3);
    json_decref(idx);
    /* Gemma's head_dim 16 != 32 / 4: the default token_dim gives 8 values per head */
    refused("gemma", "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5}",
            "token_dim", "head_dim");
    /* Gemma2 takes no past keys/values */
    refused("gemma2", "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5}",
            "past keys/values", "gemma2");
    /* Phi-3 has no default target_modules in PEFT 0.13.2 */
    refused("phi3", "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":4}",
            "target_modules", NULL);
    refused("phi3", "{\"peft_type\":\"IA3\",\"task_type\":\"CAUSAL_LM\"}", "target_modules", NULL);
}
END_TEST

/* ---- parameter counts from config.json alone ---------------------------------------------- */

START_TEST(param_counts_from_config)
{
    json_t *idx = json_load_file(tu_fixture("hf-peft-v2/INDEX.json"), 0, NULL);
    static const char *const archs[] = {"qwen2", "qwen2_seqcls", "mistral", "gemma", "gemma2", "phi3",
                                        "llama3rope"};
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++) {
        json_t *e = json_object_get(json_object_get(idx, "models"), archs[i]);
        const int64_t want = json_integer_value(json_object_get(e, "num_params"));
        char rel[128], err[512];
        snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s/config.json", archs[i]);
        peft_base_model *m;
        ck_assert_msg(peft_load_base_model_meta(tu_ctx(), tu_fixture(rel), NULL, &m) == 0, "%s",
                      peft_errmsg(tu_ctx()));
        int64_t n = 0;
        ck_assert(m->arch->count_params(m->config, NULL, &n, err, sizeof err) == 0);
        ck_assert_msg(n == want, "%s: %lld parameters, transformers %lld", archs[i], (long long)n,
                      (long long)want);
        int64_t loaded = 0;
        for (size_t p = 0; p < m->n_params; p++) loaded += m->params[p].t->numel;
        ck_assert_msg(loaded == want, "%s: the weight-free model has %lld", archs[i], (long long)loaded);
        peft_base_model_free(m);
    }
    json_decref(idx);
}
END_TEST

/* ---- sequence classification heads -------------------------------------------------------- */

START_TEST(seq_cls_heads)
{
    static const char *const archs[] = {"mistral", "gemma", "gemma2", "phi3", "llama3rope"};
    static const char *const classes[] = {"MistralForSequenceClassification",
                                          "GemmaForSequenceClassification",
                                          "Gemma2ForSequenceClassification",
                                          "Phi3ForSequenceClassification",
                                          "LlamaForSequenceClassification"};
    const char *a = archs[_i];
    char rel[128], err[1024];
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s/config.json", a);
    json_t *cfg = json_load_file(tu_fixture(rel), 0, NULL);
    json_object_set_new(cfg, "architectures", json_pack("[s]", classes[_i]));
    json_object_set_new(cfg, "id2label", json_pack("{s:s,s:s,s:s}", "0", "A", "1", "B", "2", "C"));
    char *dir = tu_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert(json_dump_file(cfg, path, JSON_INDENT(1)) == 0);
    json_decref(cfg);
    /* random weights for the head's parameter list (norm weights around 1 or, Gemma, 0) */
    peft_base_model *meta;
    ck_assert_msg(peft_load_base_model_meta(tu_ctx(), path, NULL, &meta) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_str_eq(peft_model_task(meta), "SEQ_CLS");
    peft_rng rng;
    peft_rng_seed(&rng, 77 + (uint64_t)_i);
    peft_st_out outs[128];
    float *data[128];
    ck_assert(meta->n_params <= 128);
    for (size_t p = 0; p < meta->n_params; p++) {
        const peft_tensor *t = meta->params[p].t;
        data[p] = malloc((size_t)t->numel * sizeof **data);
        const int norm = strstr(meta->params[p].name, "norm") != NULL;
        for (int64_t k = 0; k < t->numel; k++)
            data[p][k] = (float)((norm && strncmp(a, "gemma", 5) ? 1.0 : 0.0) +
                                 (norm ? 0.1 : 0.4) * peft_rng_normal(&rng));
        outs[p] = (peft_st_out){meta->params[p].name, PEFT_DTYPE_F32, t->ndim, t->shape, data[p]};
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_msg(peft_st_write(tu_ctx(), path, outs, meta->n_params, NULL) == 0, "%s", peft_errmsg(tu_ctx()));
    for (size_t p = 0; p < meta->n_params; p++) free(data[p]);
    peft_base_model_free(meta);

    peft_base_model *m;
    ck_assert_msg(peft_load_base_model(tu_ctx(), dir, &m) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_site *score = NULL;
    for (size_t k = 0; k < m->n_sites; k++)
        if (!strcmp(m->sites[k]->info.name, "score")) score = m->sites[k];
    ck_assert(score && peft_model_find_site(m, "lm_head") == NULL);
    static const int32_t ids[2 * 6] = {5, 9, 17, 33, 64, 3, 7, 11, 13, 0, 0, 0};
    static const int32_t mask[2 * 6] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
    static const int32_t labels[2] = {2, 0};
    peft_model_inputs in = {.B = 2, .T = 6, .input_ids = ids, .attention_mask = mask, .labels = labels};
    in.labels_len = 1;
    peft_graph *g = peft_graph_new(&rng);
    peft_model_outputs o;
    ck_assert_msg(m->arch->forward(m, g, &in, &o, err, sizeof err) == 0, "%s", err);
    ck_assert(o.logits->ndim == 2 && o.logits->shape[0] == 2 && o.logits->shape[1] == 3);
    const int64_t C = o.last_hidden_state->shape[2], pool[2] = {5, 2}; /* before the first pad */
    double biggest = 0, lse_sum = 0;
    for (int b = 0; b < 2; b++) {
        const float *h = peft_f32(o.last_hidden_state) + (b * 6 + pool[b]) * C;
        double mx = -INFINITY, se = 0;
        for (int l = 0; l < 3; l++) {
            double z = 0;
            for (int64_t j = 0; j < C; j++) z += (double)peft_f32(score->info.weight)[l * C + j] * h[j];
            const float got = peft_f32(o.logits)[b * 3 + l];
            ck_assert_msg(fabs(z - got) < 1e-4 * (1 + fabs(z)), "%s row %d label %d: %g, score(h) %g",
                          a, b, l, got, z);
            if (fabs(z) > biggest) biggest = fabs(z);
            if (z > mx) mx = z;
        }
        for (int l = 0; l < 3; l++) se += exp(peft_f32(o.logits)[b * 3 + l] - mx);
        lse_sum += mx + log(se) - peft_f32(o.logits)[b * 3 + labels[b]];
    }
    ck_assert(o.loss && fabs(peft_f32(o.loss)[0] - lse_sum / 2) < 1e-5);
    if (!strcmp(a, "gemma2")) /* the final soft-cap is 2.0: these logits go past it */
        ck_assert_msg(biggest > 2.0, "gemma2: logits %g do not test the missing soft-cap", biggest);
    peft_graph_free(g);
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("archs_gen");
    TCase *tc = tcase_create("archs_gen");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, cache_matches_full, 0, N_CASES);
    tcase_add_loop_test(tc, greedy_equals_full_forwards, 0, N_CASES);
    tcase_add_test(tc, peft_refusals);
    tcase_add_test(tc, param_counts_from_config);
    tcase_add_loop_test(tc, seq_cls_heads, 0, 5);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
