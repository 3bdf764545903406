/* test_generate.c — generation (core/generate.h) and the KV cache (core/kv_cache.h) on the
 * fixture models (hf-peft/_models/gpt2, llama (GQA), t5), bare and with a LoRA, prefix-tuning
 * or prompt-tuning adapter from the PEFT fixtures:
 *   1. every incremental step's logits equal a full forward over the sequence so far
 *      (left-padded batch, positions from the mask; T5 with the encoder run once);
 *   2. greedy generation equals a loop of full forwards (argmax) and use_cache = 0;
 *   3. the samplers: HF's temperature / top-k / top-p warpers, the inverse-CDF draw, seeded
 *      reproducibility, top_k = 1 and top_p = 0 equal greedy;
 *   4. EOS stops a row, finished rows get pad_token_id (the EOS id without one), special tokens
 *      from generation_config.json before config.json;
 *   5. mixed-batch rows, and `peft generate` end to end with its errors. */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "peft/generate.h"
#include "core/model/kv_cache.h"
#include "peft/peft.h"
#include "testutil.h"
#include "gen_harness.h"

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))


static int write_text(const char *path, const char *txt) { return tu_write_file(path, txt, strlen(txt)); }

/* ---- decoder-only: the left-padded batch of gen_harness.h ----------------------------------- */

static const char *const DEC_CASES[][2] = {
    {"gpt2", NULL}, {"gpt2", "gpt2__lora_default"}, {"gpt2", "gpt2__prefix"}, {"gpt2", "gpt2__prompt"},
    {"llama", NULL}, {"llama", "llama__lora_default"}, {"llama", "llama__prefix"}, {"llama", "llama__prompt"},
};
#define N_DEC (int)(sizeof DEC_CASES / sizeof DEC_CASES[0])

/* incremental steps: the prompt, then 1, 2 (two tokens in one call), 1, 1, ... new tokens */
START_TEST(cache_matches_full_decoder)
{
    tu_mdl x = tu_mdl_open("hf-peft", DEC_CASES[_i][0], DEC_CASES[_i][1]);
    char name[128];
    snprintf(name, sizeof name, "%s/%s", DEC_CASES[_i][0], DEC_CASES[_i][1] ? DEC_CASES[_i][1] : "base");
    double worst = tu_cache_vs_full(&x, TU_NC, name);
    if (getenv("TU_VERBOSE"))
        printf("cache vs full %s: max diff %.3g (%d positions, prompt learning %d)\n", name, worst,
               TU_TP + TU_NC, tu_mdl_prompt_learning(&x));
    tu_mdl_close(&x);
}
END_TEST

/* ---- T5 ---------------------------------------------------------------------------------------- */

#define TE 8
#define TD 9
static const int32_t ENC[TU_BR][TE] = {{47, 119, 108, 122, 50, 13, 114, 77}, {68, 60, 76, 114, 78, 94, 0, 0}};
static const int32_t EMASK[TU_BR][TE] = {{1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0}};
static const int32_t DEC[TU_BR][TD] = {{0, 37, 52, 25, 107, 90, 11, 5, 99}, {0, 94, 100, 24, 33, 7, 8, 64, 3}};

static const char *const T5_CASES[] = {NULL, "t5__lora_default", "t5__prefix", "t5__prompt"};

/* te = encoder length used: 5 (== the prefix length) takes T5's cross-prefix branch */
static void t5_cache_case(const char *adapter, int64_t te)
{
    tu_mdl x = tu_mdl_open("hf-peft", "t5", adapter);
    peft_kv_cache *c = peft_kv_cache_new(TU_BR);
    peft_graph *g = peft_graph_new(peft_ctx_rng(x.ctx)), *gf = peft_graph_new(peft_ctx_rng(x.ctx));
    int32_t enc[TU_BR * TE], emask[TU_BR * TE], dec[TU_BR * TD], nd[TU_BR * 2];
    for (int b = 0; b < TU_BR; b++)
        for (int64_t t = 0; t < te; t++) {
            enc[b * te + t] = ENC[b][t];
            emask[b * te + t] = EMASK[b][t];
        }
    double worst = 0;
    int64_t done = 0;
    while (done < TD) {
        const int64_t tn = done == 0 ? 2 : 1, n = done + tn;
        for (int b = 0; b < TU_BR; b++)
            for (int64_t t = 0; t < n; t++) dec[b * n + t] = DEC[b][t];
        peft_graph_reset(gf);
        peft_model_inputs fin = {.B = TU_BR, .T = te, .input_ids = enc, .attention_mask = emask, .labels = NULL};
        fin.decoder_input_ids = dec;
        fin.Td = n;
        peft_model_outputs fo;
        tu_mdl_forward(&x, gf, &fin, &fo);
        for (int b = 0; b < TU_BR; b++)
            for (int64_t t = 0; t < tn; t++) nd[b * tn + t] = DEC[b][done + t];
        peft_graph_reset(g);
        peft_model_inputs in = {.B = TU_BR, .T = te, .input_ids = enc, .attention_mask = emask, .labels = NULL};
        in.decoder_input_ids = nd;
        in.Td = tn;
        in.cache = c;
        peft_model_outputs o;
        tu_mdl_forward(&x, g, &in, &o);
        ck_assert_int_eq(o.logits->shape[1], tn);
        double d = tu_tail_diff(o.logits, fo.logits, tn);
        if (d > worst) worst = d;
        ck_assert_msg(d <= TU_CACHE_TOL, "t5/%s (Te %lld): %lld cached + %lld new: max diff %g",
                      adapter ? adapter : "base", (long long)te, (long long)done, (long long)tn, d);
        done = n;
    }
    ck_assert(c->cross_ready && c->Te == te + (x.base->prompt && x.base->prompt->virtual_tokens ? 5 : 0));
    if (getenv("TU_VERBOSE"))
        printf("cache vs full t5/%s (Te %lld): max diff %.3g\n", adapter ? adapter : "base",
               (long long)te, worst);
    peft_graph_free(g);
    peft_graph_free(gf);
    peft_kv_cache_free(c);
    tu_mdl_close(&x);
}

START_TEST(cache_matches_full_t5)
{
    t5_cache_case(T5_CASES[_i], TE);
}
END_TEST

START_TEST(cache_t5_cross_prefix)
{
    t5_cache_case("t5__prefix", 5); /* 5 virtual tokens == encoder length: the cross prefix */
}
END_TEST

/* ---- greedy ---------------------------------------------------------------------------------- */

#define NG 10

static const char *const GREEDY_CASES[][2] = {
    {"gpt2", NULL}, {"gpt2", "gpt2__lora_targets"}, {"gpt2", "gpt2__prefix"}, {"gpt2", "gpt2__prompt"},
    {"llama", NULL}, {"llama", "llama__lora_default"}, {"llama", "llama__prefix"}, {"llama", "llama__prompt"},
    {"t5", NULL}, {"t5", "t5__lora_default"}, {"t5", "t5__prefix"}, {"t5", "t5__prompt"},
};

static void prompt_inputs(const tu_mdl *x, peft_model_inputs *in)
{
    memset(in, 0, sizeof *in);
    in->B = TU_BR;
    if (x->base->is_encoder_decoder) {
        in->T = TE;
        in->input_ids = &ENC[0][0];
        in->attention_mask = &EMASK[0][0];
    } else {
        in->T = TU_TP;
        in->input_ids = &TU_PROMPT[0][0];
        in->attention_mask = &TU_PMASK[0][0];
    }
}

START_TEST(greedy_equals_full_forwards)
{
    tu_mdl x = tu_mdl_open("hf-peft", GREEDY_CASES[_i][0], GREEDY_CASES[_i][1]);
    int32_t ref[TU_BR * NG];
    peft_model_inputs gin;
    prompt_inputs(&x, &gin);
    tu_greedy_reference(&x, NG, &gin, ref);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    peft_model_inputs in;
    prompt_inputs(&x, &in);
    for (int cache = 1; cache >= 0; cache--) {
        c.use_cache = cache;
        peft_gen_output o;
        ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
        ck_assert_int_eq(o.B, TU_BR);
        ck_assert_int_eq(o.n_new, NG);
        for (int i = 0; i < TU_BR * NG; i++)
            ck_assert_msg(o.tokens[i] == ref[i], "%s/%s cache %d: row %d token %d: %d, reference %d",
                          GREEDY_CASES[_i][0], GREEDY_CASES[_i][1] ? GREEDY_CASES[_i][1] : "base",
                          cache, i / NG, i % NG, o.tokens[i], ref[i]);
        for (int b = 0; b < TU_BR; b++) ck_assert_int_eq(o.lengths[b], NG);
        peft_gen_output_free(&o);
    }
    tu_mdl_close(&x);
}
END_TEST

/* multitask prompt tuning (PEFT's generate(task_ids=...)): each row's task reaches every step;
 * cached and uncached greedy decoding equal the full-forward reference with the same tasks */
static const int32_t MPT_TASKS[TU_BR] = {1, 0};

static tu_mdl open_mpt(void) { return tu_mdl_open("hf-peft-v2", "gpt2", "gpt2__mpt"); }

/* the reference greedy tokens with each row of task tasks[row] */
static void mpt_reference(tu_mdl *x, const int32_t *tasks, int32_t *ref)
{
    peft_model_inputs gin;
    prompt_inputs(x, &gin);
    x->task_ids = tasks;
    tu_greedy_reference(x, NG, &gin, ref);
    x->task_ids = NULL;
}

START_TEST(greedy_mpt_task_ids)
{
    tu_mdl x = open_mpt();
    int32_t ref[TU_BR * NG];
    static const int32_t swapped[TU_BR] = {0, 1};
    mpt_reference(&x, MPT_TASKS, ref);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    peft_model_inputs in;
    prompt_inputs(&x, &in);
    in.task_ids = MPT_TASKS;
    for (int cache = 1; cache >= 0; cache--) {
        c.use_cache = cache;
        peft_gen_output o;
        ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
        ck_assert_int_eq(o.n_new, NG);
        for (int i = 0; i < TU_BR * NG; i++)
            ck_assert_msg(o.tokens[i] == ref[i], "mpt cache %d: row %d token %d: %d, reference %d",
                          cache, i / NG, i % NG, o.tokens[i], ref[i]);
        peft_gen_output_free(&o);
    }
    /* the tasks matter (on this tiny random adapter the prompts are ~1e-4 and the greedy tokens
     * happen to agree: the logits must not) */
    peft_graph *g = peft_graph_new(peft_ctx_rng(x.ctx));
    peft_model_outputs o1, o2;
    tu_mdl_forward(&x, g, &in, &o1);
    peft_graph *g2 = peft_graph_new(peft_ctx_rng(x.ctx));
    in.task_ids = swapped;
    tu_mdl_forward(&x, g2, &in, &o2);
    ck_assert(tu_tail_diff(o1.logits, o2.logits, 1) > 0);
    peft_graph_free(g);
    peft_graph_free(g2);
    /* without task ids, PEFT's error; a task the adapter lacks, named */
    in.task_ids = NULL;
    peft_gen_output o;
    ck_assert_int_ne(tu_mdl_generate(&x, &in, &c, &o), 0);
    ck_assert_has(peft_errmsg(x.ctx), "task_ids cannot be None");
    static const int32_t bad[TU_BR] = {0, 2};
    in.task_ids = bad;
    ck_assert_int_ne(tu_mdl_generate(&x, &in, &c, &o), 0);
    ck_assert_has(peft_errmsg(x.ctx), "task_ids[1] is 2; the adapter has num_tasks 2");
    tu_mdl_close(&x);
}
END_TEST

/* ---- samplers --------------------------------------------------------------------------------- */

START_TEST(warp_temperature_top_k_top_p)
{
    /* temperature divides */
    float s[4] = {1, 2, -4, 0};
    ck_assert_int_eq(peft_gen_warp(s, 4, 2.0, 0, 1.0), 0);
    ck_assert(s[0] == 0.5f && s[1] == 1.0f && s[2] == -2.0f && s[3] == 0.0f);
    /* top-k keeps every score >= the k-th largest (ties at the k-th stay) */
    float t[5] = {1, 3, 3, 0, 2};
    ck_assert_int_eq(peft_gen_warp(t, 5, 1.0, 1, 1.0), 0);
    ck_assert(isinf(t[0]) && t[1] == 3 && t[2] == 3 && isinf(t[3]) && isinf(t[4]));
    float u[5] = {1, 3, 3, 0, 2};
    ck_assert_int_eq(peft_gen_warp(u, 5, 1.0, 3, 1.0), 0);
    ck_assert(isinf(u[0]) && !isinf(u[1]) && !isinf(u[2]) && isinf(u[3]) && u[4] == 2);
    float w[3] = {1, 2, 3}; /* k >= V: nothing removed */
    ck_assert_int_eq(peft_gen_warp(w, 3, 1.0, 7, 1.0), 0);
    ck_assert(w[0] == 1 && w[1] == 2 && w[2] == 3);
    /* top-p: probabilities 0.5, 0.3, 0.15, 0.05 (shuffled); the smallest top set whose mass
     * reaches p: 0.75 -> {0.5, 0.3}; 0.85 -> {0.5, 0.3, 0.15}; 0.4 -> {0.5}; 1 -> all */
    const double pr[4] = {0.15, 0.5, 0.05, 0.3};
    const struct { double p; int keep[4]; } cases[] = {
        {0.75, {0, 1, 0, 1}}, {0.85, {1, 1, 0, 1}}, {0.4, {0, 1, 0, 0}}, {0.0, {0, 1, 0, 0}},
        {1.0, {1, 1, 1, 1}}, {0.99, {1, 1, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float l[4];
        for (int j = 0; j < 4; j++) l[j] = (float)log(pr[j]) + 3.0f; /* any shift: softmax */
        ck_assert_int_eq(peft_gen_warp(l, 4, 1.0, 0, cases[i].p), 0);
        for (int j = 0; j < 4; j++)
            ck_assert_msg((!isinf(l[j])) == cases[i].keep[j], "top_p %g: token %d (p %.2f) %s",
                          cases[i].p, j, pr[j], isinf(l[j]) ? "removed" : "kept");
    }
    /* top-k then top-p: k = 3 drops 0.05 first; p = 0.9 of the remaining renormalised mass */
    float l[4];
    for (int j = 0; j < 4; j++) l[j] = (float)log(pr[j]);
    ck_assert_int_eq(peft_gen_warp(l, 4, 1.0, 3, 0.9), 0);
    ck_assert(!isinf(l[0]) && !isinf(l[1]) && isinf(l[2]) && !isinf(l[3]));
}
END_TEST

START_TEST(sample_inverse_cdf_and_temperature)
{
    const float l[4] = {logf(0.5f), logf(0.3f), -INFINITY, logf(0.2f)};
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.0), 0);
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.49), 0);
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.51), 1);
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.79), 1);
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.81), 3); /* -inf is never picked */
    ck_assert_int_eq(peft_gen_sample(l, 4, 0.999999), 3);
    ck_assert_int_eq(peft_gen_argmax((const float[]){1, 5, 5, 2}, 4), 1); /* first on ties */
    /* temperature 2 samples from p^(1/2) normalised: the empirical frequencies agree */
    const double p[3] = {0.6, 0.3, 0.1};
    double q[3], z = 0;
    for (int j = 0; j < 3; j++) z += q[j] = sqrt(p[j]);
    peft_rng rng;
    peft_rng_seed(&rng, 42);
    int cnt[3] = {0, 0, 0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float s[3];
        for (int j = 0; j < 3; j++) s[j] = (float)log(p[j]);
        ck_assert_int_eq(peft_gen_warp(s, 3, 2.0, 0, 1.0), 0);
        cnt[peft_gen_sample(s, 3, peft_rng_uniform(&rng))]++;
    }
    for (int j = 0; j < 3; j++)
        ck_assert_msg(fabs((double)cnt[j] / n - q[j] / z) < 0.005, "token %d: frequency %.4f, "
                      "expected %.4f", j, (double)cnt[j] / n, q[j] / z);
}
END_TEST

static void gen_tokens(tu_mdl *x, peft_gen_config *c, int32_t *tok)
{
    peft_model_inputs in;
    prompt_inputs(x, &in);
    peft_gen_output o;
    ck_assert_msg(tu_mdl_generate(x, &in, c, &o) == 0, "%s", peft_errmsg(x->ctx));
    ck_assert_int_eq(o.n_new, c->max_new_tokens);
    memcpy(tok, o.tokens, (size_t)(TU_BR * o.n_new) * sizeof *tok);
    peft_gen_output_free(&o);
}

START_TEST(sampling_seeded_and_limits)
{
    tu_mdl x = tu_mdl_open("hf-peft", _i ? "t5" : "llama", _i ? "t5__lora_default" : "llama__lora_default");
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    int32_t greedy[TU_BR * NG], a[TU_BR * NG], b2[TU_BR * NG], d[TU_BR * NG];
    gen_tokens(&x, &c, greedy);
    c.do_sample = 1;
    c.top_k = 0;
    c.seed = 7;
    gen_tokens(&x, &c, a);
    gen_tokens(&x, &c, b2);
    ck_assert(!memcmp(a, b2, sizeof a)); /* the same seed: the same tokens */
    int differ = 0;
    for (uint64_t seed = 8; seed < 12 && !differ; seed++) {
        c.seed = seed;
        gen_tokens(&x, &c, d);
        differ = memcmp(a, d, sizeof a) != 0;
    }
    ck_assert_msg(differ, "other seeds give the same samples");
    /* no cache: the same draws */
    c.seed = 7;
    c.use_cache = 0;
    gen_tokens(&x, &c, d);
    ck_assert(!memcmp(a, d, sizeof a));
    c.use_cache = 1;
    /* top_k = 1, top_p = 0, a tiny temperature: greedy whatever the seed */
    c.top_k = 1;
    gen_tokens(&x, &c, d);
    ck_assert(!memcmp(greedy, d, sizeof d));
    c.top_k = 50;
    c.top_p = 0.0;
    gen_tokens(&x, &c, d);
    ck_assert(!memcmp(greedy, d, sizeof d));
    c.top_p = 1.0;
    c.top_k = 0;
    c.temperature = 1e-4;
    gen_tokens(&x, &c, d);
    ck_assert(!memcmp(greedy, d, sizeof d));
    tu_mdl_close(&x);
}
END_TEST

/* ---- EOS and special tokens ------------------------------------------------------------------- */

START_TEST(eos_stops_rows_and_pads)
{
    /* llama: pad_token_id 0; gpt2 (bare): no pad token, so finished rows get the EOS id */
    const char *arch = _i ? "gpt2" : "llama", *adapter = _i ? "gpt2__lora_targets" : "llama__lora_default";
    tu_mdl x = tu_mdl_open("hf-peft", arch, adapter);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    int32_t free_run[TU_BR * NG];
    gen_tokens(&x, &c, free_run);
    /* EOS = row 0's third token; each row stops at its first occurrence */
    const int32_t eos = free_run[2];
    c.n_eos = 1;
    c.eos_token_id[0] = eos;
    peft_model_inputs in;
    prompt_inputs(&x, &in);
    peft_gen_output o;
    ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
    const int32_t pad = _i ? eos : 0;
    ck_assert_int_eq(o.pad_token_id, pad);
    int64_t stop[TU_BR], longest = 0;
    for (int b = 0; b < TU_BR; b++) {
        stop[b] = NG;
        for (int k = 0; k < NG; k++)
            if (free_run[b * NG + k] == eos) { stop[b] = k + 1; break; }
        if (stop[b] > longest) longest = stop[b];
    }
    ck_assert(stop[0] <= 3);
    ck_assert_int_eq(o.n_new, longest); /* stops when every row has finished */
    for (int b = 0; b < TU_BR; b++) {
        ck_assert_int_eq(o.lengths[b], stop[b]);
        for (int64_t k = 0; k < o.n_new; k++)
            ck_assert_int_eq(o.tokens[b * o.n_new + k], k < stop[b] ? free_run[b * NG + k] : pad);
    }
    peft_gen_output_free(&o);
    /* an explicit pad id wins */
    c.pad_token_id = 77;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) == 0);
    ck_assert_int_eq(o.pad_token_id, 77);
    if (o.n_new > stop[0]) ck_assert_int_eq(o.tokens[stop[0]], 77);
    peft_gen_output_free(&o);
    /* one row that finishes: generation ends early */
    peft_model_inputs one = in;
    one.B = 1;
    ck_assert(tu_mdl_generate(&x, &one, &c, &o) == 0);
    ck_assert_int_eq(o.n_new, stop[0]);
    ck_assert_int_eq(o.tokens[stop[0] - 1], eos);
    peft_gen_output_free(&o);
    tu_mdl_close(&x);
}
END_TEST

/* no attention mask, the pad token in input_ids (and not EOS): the mask is ids != pad, as HF */
START_TEST(mask_inferred_from_pad)
{
    tu_mdl x = tu_mdl_open("hf-peft", _i ? "t5" : "llama", NULL); /* pad 0, eos 2 / 1 */
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    int32_t with_mask[TU_BR * NG], without[TU_BR * NG];
    gen_tokens(&x, &c, with_mask);
    peft_model_inputs in;
    prompt_inputs(&x, &in);
    in.attention_mask = NULL;
    peft_gen_output o;
    ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
    memcpy(without, o.tokens, sizeof without);
    ck_assert_int_eq(o.n_new, NG);
    peft_gen_output_free(&o);
    ck_assert(!memcmp(with_mask, without, sizeof without));
    /* pad == EOS: nothing is inferred, the pads count as tokens (an all-ones mask) */
    c.n_eos = 1;
    c.eos_token_id[0] = 0;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) == 0);
    const int32_t ones[TU_BR * TE] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    in.attention_mask = ones;
    peft_gen_output o2;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o2) == 0);
    ck_assert_int_eq(o.n_new, o2.n_new);
    ck_assert(!memcmp(o.tokens, o2.tokens, (size_t)(TU_BR * o.n_new) * sizeof(int32_t)));
    peft_gen_output_free(&o);
    peft_gen_output_free(&o2);
    tu_mdl_close(&x);
}
END_TEST

static void link_file(const char *dir, const char *model_dir, const char *name)
{
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/%s", model_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    ck_assert_msg(symlink(src, dst) == 0, "symlink %s", dst);
}

START_TEST(special_tokens_from_the_model_dir)
{
    /* the fixtures' own files: llama eos 2 / pad 0, gpt2 eos 50256 and no pad, t5 start 0 */
    const char *arches[3] = {"llama", "gpt2", "t5"};
    const int32_t pads[3] = {0, 50256, 0};
    for (int i = 0; i < 3; i++) {
        tu_mdl x = tu_mdl_open("hf-peft", arches[i], NULL);
        peft_gen_config c;
        peft_gen_config_init(&c);
        c.max_new_tokens = 2;
        peft_model_inputs in;
        prompt_inputs(&x, &in);
        peft_gen_output o;
        ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
        ck_assert_int_eq(o.pad_token_id, pads[i]);
        ck_assert_int_eq(o.decoder_start_token_id, i == 2 ? 0 : -1);
        peft_gen_output_free(&o);
        tu_mdl_close(&x);
    }
    /* generation_config.json wins over config.json; eos may be a list */
    char *dir = tu_tmpdir();
    const char *md = tu_fixture("hf-peft/_models/llama");
    link_file(dir, md, "config.json");
    link_file(dir, md, "model.safetensors");
    tu_mdl x = tu_mdl_open("hf-peft", "llama", NULL);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    int32_t free_run[TU_BR * NG];
    gen_tokens(&x, &c, free_run);
    tu_mdl_close(&x);
    char path[4096], txt[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    snprintf(txt, sizeof txt, "{\"eos_token_id\": [127, %d], \"pad_token_id\": 9}", free_run[1]);
    ck_assert(write_text(path, txt) == 0);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert_msg(peft_load_base_model(ctx, dir, &base) == 0, "%s", peft_errmsg(ctx));
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    peft_model_inputs in = {.B = 1, .T = TU_TP, .input_ids = &TU_PROMPT[0][0], .attention_mask = &TU_PMASK[0][0], .labels = NULL};
    peft_gen_output o;
    ck_assert_msg(peft_generate_base(ctx, base, &in, &c, &o) == 0, "%s", peft_errmsg(ctx));
    ck_assert_int_eq(o.pad_token_id, 9);
    ck_assert_int_le(o.n_new, 2);
    ck_assert_int_eq(o.tokens[o.n_new - 1], o.n_new == 2 ? free_run[1] : free_run[0]);
    peft_gen_output_free(&o);
    /* a malformed generation_config.json is an error naming it */
    ck_assert(write_text(path, "{\"eos_token_id\": \"x\"}") == 0);
    ck_assert(peft_generate_base(ctx, base, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(ctx), "generation_config.json");
    ck_assert_has(peft_errmsg(ctx), "eos_token_id");
    ck_assert(write_text(path, "{oops") == 0);
    ck_assert(peft_generate_base(ctx, base, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(ctx), "generation_config.json");
    peft_base_model_free(base);
    peft_ctx_free(ctx);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------- */

START_TEST(bad_configs_and_cache_misuse)
{
    tu_mdl x = tu_mdl_open("hf-peft", "gpt2", NULL);
    peft_model_inputs in;
    prompt_inputs(&x, &in);
    peft_gen_output o;
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = 0;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "max_new_tokens");
    peft_gen_config_init(&c);
    c.do_sample = 1;
    c.temperature = 0;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "temperature");
    peft_gen_config_init(&c);
    c.do_sample = 1;
    c.top_p = 1.5;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "top_p");
    peft_gen_config_init(&c);
    c.do_sample = 1;
    c.top_k = -1;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "top_k");
    /* GPT-2's learned positions: 6 prompt tokens + 60 new need 65 > n_positions 64 */
    peft_gen_config_init(&c);
    c.max_new_tokens = 60;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "n_positions 64");
    ck_assert_has(peft_errmsg(x.ctx), "at most max_new_tokens 59");
    c.max_new_tokens = 59; /* exactly fits */
    c.n_eos = 0;
    ck_assert_msg(tu_mdl_generate(&x, &in, &c, &o) == 0, "%s", peft_errmsg(x.ctx));
    ck_assert_int_eq(o.n_new, 59);
    peft_gen_output_free(&o);
    in.input_ids = NULL;
    ck_assert(tu_mdl_generate(&x, &in, &c, &o) != 0);
    ck_assert_has(peft_errmsg(x.ctx), "input_ids");

    /* a cached forward: no tape, the batch size the cache was made for */
    peft_kv_cache *kc = peft_kv_cache_new(3);
    peft_graph *g = peft_graph_new(peft_ctx_rng(x.ctx));
    prompt_inputs(&x, &in);
    in.cache = kc;
    peft_model_outputs out;
    char err[1024];
    peft_graph_set_recording(g, 1);
    ck_assert(x.base->arch->forward(x.base, g, &in, &out, err, sizeof err) != 0);
    ck_assert_has(err, "recording");
    peft_graph_set_recording(g, 0);
    peft_graph_reset(g);
    ck_assert(x.base->arch->forward(x.base, g, &in, &out, err, sizeof err) != 0);
    ck_assert_has(err, "batches of 3 rows");
    ck_assert_int_eq(peft_kv_cache_len(kc), 0); /* nothing committed */
    peft_kv_cache_free(kc);
    /* the cache runs past n_positions: a clear error, the cache unchanged */
    kc = peft_kv_cache_new(TU_BR);
    int32_t ids[TU_BR * 64] = {0};
    peft_model_inputs big = {.B = TU_BR, .T = 60, .input_ids = ids, .attention_mask = NULL, .labels = NULL};
    big.cache = kc;
    peft_graph_reset(g);
    ck_assert_msg(x.base->arch->forward(x.base, g, &big, &out, err, sizeof err) == 0, "%s", err);
    big.T = 5;
    peft_graph_reset(g);
    ck_assert(x.base->arch->forward(x.base, g, &big, &out, err, sizeof err) != 0);
    ck_assert_has(err, "exceeds n_positions 64 (60 cached + 5 new tokens)");
    ck_assert_int_eq(peft_kv_cache_len(kc), 60);
    peft_kv_cache_reset(kc);
    ck_assert_int_eq(peft_kv_cache_len(kc), 0);
    peft_kv_cache_free(kc);
    peft_graph_free(g);
    tu_mdl_close(&x);

    /* a prefix-filled cache refuses a model without that prefix */
    tu_mdl p = tu_mdl_open("hf-peft", "gpt2", "gpt2__prefix");
    kc = peft_kv_cache_new(TU_BR);
    g = peft_graph_new(peft_ctx_rng(p.ctx));
    prompt_inputs(&p, &in);
    in.cache = kc;
    ck_assert_msg(peft_model_forward(p.m, g, &in, &out) == 0, "%s", peft_errmsg(p.ctx));
    ck_assert_int_eq(peft_kv_cache_len(kc), 5 + TU_TP);
    ck_assert(peft_disable_adapter(p.m) == 0);
    peft_graph_reset(g);
    in.T = 1;
    ck_assert(peft_model_forward(p.m, g, &in, &out) != 0);
    ck_assert_has(peft_errmsg(p.ctx), "5 prefix entries");
    peft_kv_cache_free(kc);
    peft_graph_free(g);
    tu_mdl_close(&p);
}
END_TEST

/* ---- mixed-batch rows ---------------------------------------------------------------------------- */

START_TEST(row_adapters_equal_single_adapter_runs)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/llama"), &base) == 0);
    peft_model *m;
    ck_assert_msg(peft_from_pretrained(ctx, base, tu_fixture("hf-peft/llama__lora_default/adapter"), "a", 0, &m) == 0,
                  "%s", peft_errmsg(ctx));
    ck_assert_msg(peft_load_adapter(m, tu_fixture("hf-peft/llama__lora_targets/adapter"), "b", 0) == 0, "%s",
                  peft_errmsg(ctx));
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    peft_model_inputs in = {.B = TU_BR, .T = TU_TP, .input_ids = &TU_PROMPT[0][0], .attention_mask = &TU_PMASK[0][0], .labels = NULL};
    const char *rows[TU_BR] = {"b", "__base__"};
    peft_gen_output mixed;
    ck_assert_msg(peft_generate(m, &in, &c, rows, &mixed) == 0, "%s", peft_errmsg(ctx));
    /* row 0 alone with adapter b; row 1 alone with adapters disabled */
    peft_gen_output one;
    peft_model_inputs r0 = {.B = 1, .T = TU_TP, .input_ids = &TU_PROMPT[0][0], .attention_mask = &TU_PMASK[0][0], .labels = NULL};
    peft_model_inputs r1 = {.B = 1, .T = TU_TP, .input_ids = &TU_PROMPT[1][0], .attention_mask = &TU_PMASK[1][0], .labels = NULL};
    ck_assert(peft_set_adapter(m, "b") == 0);
    ck_assert(peft_generate(m, &r0, &c, NULL, &one) == 0);
    ck_assert(!memcmp(one.tokens, mixed.tokens, NG * sizeof(int32_t)));
    peft_gen_output_free(&one);
    ck_assert(peft_disable_adapter(m) == 0);
    ck_assert(peft_generate(m, &r1, &c, NULL, &one) == 0);
    ck_assert(!memcmp(one.tokens, mixed.tokens + NG, NG * sizeof(int32_t)));
    peft_gen_output_free(&one);
    ck_assert(peft_enable_adapter(m) == 0);
    /* an unknown row adapter is an error naming it */
    const char *badrows[TU_BR] = {"a", "zzz"};
    ck_assert(peft_generate(m, &in, &c, badrows, &one) != 0);
    ck_assert_has(peft_errmsg(ctx), "zzz");
    peft_gen_output_free(&mixed);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* ---- the command line ------------------------------------------------------------------------------ */

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(tmp); free(tmp); }

/* OUT.json key (TU_BR, n) rows into a (TU_BR * n) array; returns n */
static int64_t read_rows(const char *path, const char *key, int32_t *dst, int64_t max)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    ck_assert_msg(root, "%s: %s", path, je.text);
    json_t *rows = json_object_get(root, key);
    ck_assert(json_is_array(rows) && json_array_size(rows) == TU_BR);
    int64_t n = (int64_t)json_array_size(json_array_get(rows, 0));
    ck_assert(TU_BR * n <= max);
    for (size_t b = 0; b < TU_BR; b++) {
        json_t *r = json_array_get(rows, b);
        ck_assert((int64_t)json_array_size(r) == n);
        for (int64_t t = 0; t < n; t++) dst[b * n + t] = (int32_t)json_integer_value(json_array_get(r, (size_t)t));
    }
    json_decref(root);
    return n;
}

static void write_input(const char *path)
{
    const char *txt = "{\"input_ids\": [[61, 111, 52, 57, 100, 74], [0, 0, 43, 124, 73, 91]],"
                      " \"attention_mask\": [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]}";
    ck_assert(write_text(path, txt) == 0);
}

START_TEST(cli_generate_end_to_end)
{
    char in[4096], outp[4096], *out;
    snprintf(in, sizeof in, "%s/in.json", tmp);
    snprintf(outp, sizeof outp, "%s/out.json", tmp);
    write_input(in);
    int rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --max-new-tokens %d --eos none",
                         tu_fixture("hf-peft/_models/llama"), tu_fixture("hf-peft/llama__lora_default/adapter"), in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_has(out, "KV cache");
    free(out);
    int32_t got[TU_BR * 32], seq[TU_BR * 32];
    ck_assert_int_eq(read_rows(outp, "generated_ids", got, TU_BR * 32), NG);
    ck_assert_int_eq(read_rows(outp, "sequences", seq, TU_BR * 32), TU_TP + NG);
    tu_mdl x = tu_mdl_open("hf-peft", "llama", "llama__lora_default");
    int32_t ref[TU_BR * NG];
    peft_model_inputs gin;
    prompt_inputs(&x, &gin);
    tu_greedy_reference(&x, NG, &gin, ref);
    ck_assert(!memcmp(got, ref, sizeof ref));
    for (int b = 0; b < TU_BR; b++) {
        ck_assert(!memcmp(seq + b * (TU_TP + NG), TU_PROMPT[b], sizeof TU_PROMPT[b]));
        ck_assert(!memcmp(seq + b * (TU_TP + NG) + TU_TP, ref + b * NG, NG * sizeof(int32_t)));
    }
    /* sampling from the command line equals the library's, seeded */
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --max-new-tokens %d --eos none "
                     "--do-sample --temperature 0.8 --top-k 20 --top-p 0.9 --seed 5",
                     tu_fixture("hf-peft/_models/llama"), tu_fixture("hf-peft/llama__lora_default/adapter"), in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    read_rows(outp, "generated_ids", got, TU_BR * 32);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    c.do_sample = 1;
    c.temperature = 0.8;
    c.top_k = 20;
    c.top_p = 0.9;
    c.seed = 5;
    int32_t lib[TU_BR * NG];
    gen_tokens(&x, &c, lib);
    ck_assert(!memcmp(got, lib, sizeof lib));
    tu_mdl_close(&x);
    /* T5: sequences start with decoder_start_token_id; --no-cache gives the same tokens */
    const char *t5in = "{\"input_ids\": [[47, 119, 108, 122, 50, 13, 114, 77], [68, 60, 76, 114, 78, 94, 0, 0]],"
                       " \"attention_mask\": [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]}";
    ck_assert(write_text(in, t5in) == 0);
    char out2[4096];
    snprintf(out2, sizeof out2, "%s/out2.json", tmp);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --max-new-tokens 5 --eos none",
                     tu_fixture("hf-peft/_models/t5"), tu_fixture("hf-peft/t5__prefix/adapter"), in, outp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --max-new-tokens 5 --eos none --no-cache",
                     tu_fixture("hf-peft/_models/t5"), tu_fixture("hf-peft/t5__prefix/adapter"), in, out2);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_has(out, "no cache");
    free(out);
    int32_t s1[TU_BR * 32], s2[TU_BR * 32];
    ck_assert_int_eq(read_rows(outp, "sequences", s1, TU_BR * 32), 6);
    ck_assert_int_eq(read_rows(out2, "sequences", s2, TU_BR * 32), 6);
    ck_assert(!memcmp(s1, s2, TU_BR * 6 * sizeof(int32_t)));
    ck_assert(s1[0] == 0 && s1[6] == 0);
}
END_TEST

START_TEST(cli_generate_row_adapters)
{
    char in[4096], outp[4096], *out;
    snprintf(in, sizeof in, "%s/in.json", tmp);
    snprintf(outp, sizeof outp, "%s/out.json", tmp);
    write_input(in);
    char model[4096], a[4096], b[4096];
    snprintf(model, sizeof model, "%s", tu_fixture("hf-peft/_models/llama"));
    snprintf(a, sizeof a, "%s:a", tu_fixture("hf-peft/llama__lora_default/adapter"));
    snprintf(b, sizeof b, "%s:b", tu_fixture("hf-peft/llama__lora_targets/adapter"));
    int rc = tu_run_peft(&out, "generate --model %s --adapter %s --adapter %s --input %s --output %s --max-new-tokens %d "
                         "--eos none --row-adapters b,__base__", model, a, b, in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    int32_t got[TU_BR * 32];
    ck_assert_int_eq(read_rows(outp, "generated_ids", got, TU_BR * 32), NG);
    /* the same rows through the library */
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, model, &base) == 0);
    peft_model *m;
    ck_assert(peft_from_pretrained(ctx, base, tu_fixture("hf-peft/llama__lora_default/adapter"), "a", 0, &m) == 0);
    ck_assert(peft_load_adapter(m, tu_fixture("hf-peft/llama__lora_targets/adapter"), "b", 0) == 0);
    peft_gen_config c;
    peft_gen_config_init(&c);
    c.max_new_tokens = NG;
    c.n_eos = 0;
    peft_model_inputs mi = {.B = TU_BR, .T = TU_TP, .input_ids = &TU_PROMPT[0][0], .attention_mask = &TU_PMASK[0][0], .labels = NULL};
    const char *rows[TU_BR] = {"b", "__base__"};
    peft_gen_output o;
    ck_assert_msg(peft_generate(m, &mi, &c, rows, &o) == 0, "%s", peft_errmsg(ctx));
    ck_assert(!memcmp(got, o.tokens, TU_BR * NG * sizeof(int32_t)));
    peft_gen_output_free(&o);
    peft_model_free(m);
    peft_ctx_free(ctx);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --row-adapters a", model, a, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "1 names for a batch of 2 rows");
    free(out);
}
END_TEST

/* --task-ids (and IN.json's task_ids) give the rows' tasks: the library's tokens */
START_TEST(cli_generate_task_ids)
{
    char in[4096], outp[4096], *out, model[4096], adapter[4096];
    snprintf(in, sizeof in, "%s/in.json", tmp);
    snprintf(outp, sizeof outp, "%s/out.json", tmp);
    write_input(in);
    snprintf(model, sizeof model, "%s", tu_fixture("hf-peft-v2/_models/gpt2"));
    snprintf(adapter, sizeof adapter, "%s", tu_fixture("hf-peft-v2/gpt2__mpt/adapter"));
    int rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s "
                         "--max-new-tokens %d --eos none --task-ids 1,0", model, adapter, in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    int32_t got[TU_BR * 32], ref[TU_BR * NG];
    ck_assert_int_eq(read_rows(outp, "generated_ids", got, TU_BR * 32), NG);
    tu_mdl x = open_mpt();
    mpt_reference(&x, MPT_TASKS, ref);
    ck_assert(!memcmp(got, ref, sizeof ref));
    /* one id for every row */
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s "
                     "--max-new-tokens %d --eos none --task-ids 1", model, adapter, in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    static const int32_t ones[TU_BR] = {1, 1};
    mpt_reference(&x, ones, ref);
    read_rows(outp, "generated_ids", got, TU_BR * 32);
    ck_assert(!memcmp(got, ref, sizeof ref));
    tu_mdl_close(&x);
    /* the same from the input file */
    const char *txt = "{\"input_ids\": [[61, 111, 52, 57, 100, 74], [0, 0, 43, 124, 73, 91]],"
                      " \"attention_mask\": [[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]],"
                      " \"task_ids\": [1, 1]}";
    ck_assert(write_text(in, txt) == 0);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s "
                     "--max-new-tokens %d --eos none", model, adapter, in, outp, NG);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    read_rows(outp, "generated_ids", got, TU_BR * 32);
    ck_assert(!memcmp(got, ref, sizeof ref));
    /* errors: both sources, a count that fits no batch, a task the adapter lacks, none at all */
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --task-ids 1",
                     model, adapter, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "keep one");
    free(out);
    write_input(in);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --task-ids 1,0,1",
                     model, adapter, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "3 task ids for a batch of 2 rows");
    free(out);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --task-ids 0,x",
                     model, adapter, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "--task-ids: expected an integer");
    free(out);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s --task-ids 5",
                     model, adapter, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "task_ids[0] is 5; the adapter has num_tasks 2");
    free(out);
    rc = tu_run_peft(&out, "generate --model %s --adapter %s --input %s --output %s", model,
                     adapter, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "task_ids cannot be None");
    free(out);
}
END_TEST

START_TEST(cli_generate_errors)
{
    char in[4096], outp[4096], *out;
    snprintf(in, sizeof in, "%s/in.json", tmp);
    snprintf(outp, sizeof outp, "%s/out.json", tmp);
    char gpt2[4096]; /* tu_fixture's buffers rotate: keep a copy */
    snprintf(gpt2, sizeof gpt2, "%s", tu_fixture("hf-peft/_models/gpt2"));
    /* a missing and a malformed input file */
    int rc = tu_run_peft(&out, "generate --model %s --input %s/none.json --output %s", gpt2, tmp, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "none.json");
    free(out);
    ck_assert(write_text(in, "{\"input_ids\": [[1, 2], [3]]}") == 0);
    rc = tu_run_peft(&out, "generate --model %s --input %s --output %s", gpt2, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "in.json");
    ck_assert_has(out, "input_ids");
    free(out);
    ck_assert(write_text(in, "{\"input_ids\": [[1, 200]]}") == 0);
    rc = tu_run_peft(&out, "generate --model %s --input %s --output %s", gpt2, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "outside the vocabulary");
    free(out);
    /* GPT-2: the new tokens do not fit n_positions */
    write_input(in);
    rc = tu_run_peft(&out, "generate --model %s --input %s --output %s --max-new-tokens 100", gpt2, in, outp);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "n_positions 64");
    ck_assert_has(out, "max_new_tokens 100");
    free(out);
    ck_assert(access(outp, F_OK) != 0); /* nothing written */
    /* option values */
    const char *bad[][2] = {
        {"--max-new-tokens 0", "--max-new-tokens"}, {"--max-new-tokens x", "--max-new-tokens"},
        {"--do-sample --top-p 2", "top_p"},          {"--do-sample --temperature 0", "temperature"},
        {"--eos -3", "--eos"},                      {"--top-k -1", "--top-k"},
        {"--bogus", "unknown option"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = tu_run_peft(&out, "generate --model %s --input %s --output %s %s", gpt2, in, outp, bad[i][0]);
        ck_assert_msg(rc != 0, "%s accepted", bad[i][0]);
        ck_assert_has(out, bad[i][1]);
        free(out);
    }
    rc = tu_run_peft(&out, "generate --model %s --input %s", gpt2, in);
    ck_assert_int_ne(rc, 0);
    ck_assert_has(out, "--output");
    free(out);
    /* greedy with sampling options: a warning, then it runs */
    rc = tu_run_peft(&out, "generate --model %s --input %s --output %s --max-new-tokens 3 --top-k 4", gpt2, in, outp);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_has(out, "only apply with --do-sample");
    free(out);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("generate");
    TCase *t = tcase_create("cache");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, cache_matches_full_decoder, 0, N_DEC);
    tcase_add_loop_test(t, cache_matches_full_t5, 0, 4);
    tcase_add_test(t, cache_t5_cross_prefix);
    suite_add_tcase(s, t);
    t = tcase_create("decoding");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, greedy_equals_full_forwards, 0, (int)(sizeof GREEDY_CASES / sizeof GREEDY_CASES[0]));
    tcase_add_test(t, greedy_mpt_task_ids);
    tcase_add_test(t, warp_temperature_top_k_top_p);
    tcase_add_test(t, sample_inverse_cdf_and_temperature);
    tcase_add_loop_test(t, sampling_seeded_and_limits, 0, 2);
    tcase_add_loop_test(t, eos_stops_rows_and_pads, 0, 2);
    tcase_add_test(t, special_tokens_from_the_model_dir);
    tcase_add_loop_test(t, mask_inferred_from_pad, 0, 2);
    tcase_add_test(t, bad_configs_and_cache_misuse);
    tcase_add_test(t, row_adapters_equal_single_adapter_runs);
    suite_add_tcase(s, t);
    t = tcase_create("cli");
    tcase_set_timeout(t, 120);
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, cli_generate_end_to_end);
    tcase_add_test(t, cli_generate_row_adapters);
    tcase_add_test(t, cli_generate_task_ids);
    tcase_add_test(t, cli_generate_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    int failed = tu_run_suite(suite());
    return failed ? 1 : 0;
}
