/* test_llama.c — LLaMA (LlamaForCausalLM, LlamaForSequenceClassification) against transformers
 * 4.44, the prompt-learning hooks of LLaMA and GPT-2 against PEFT 0.13.2's prompt/prefix fixtures
 * (driven by a small hook provider in this file, no plugin), GPT2ForSequenceClassification /
 * LlamaForSequenceClassification pooling and losses against a hand computation, parameter counts
 * from config.json alone, and the config errors.
 * Fixtures: hf-peft/_models/llama (hidden 32, 4 heads, 2 kv heads, 2 layers, vocab 128),
 * hf-peft/_models/gpt2, hf-peft/{llama,gpt2}__{prompt,prefix,prefix_proj},
 * hf-configs/gpt2-large/config.json. */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "peft/model.h"
#include "core/ops/ops.h"
#include "model_fixture.h"
#include "testutil.h"

#define LLAMA_DIR "hf-peft/_models/llama"
#define GPT2_DIR "hf-peft/_models/gpt2"
#define LLAMA_LOSS 4.894876003265381
#define LLAMA_PARAMS 26784
#define GPT2_PARAMS 31616
#define GPT2_LARGE_PARAMS 774030080LL

#define ck_assert_has(msg, needle) \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (needle))

/* ---- helpers ------------------------------------------------------------------------------ */

/* INDEX.json cases[case].loss */
static double case_loss(const char *name)
{
    json_error_t je;
    json_t *idx = json_load_file(tu_fixture("hf-peft/INDEX.json"), 0, &je);
    ck_assert_msg(idx != NULL, "INDEX.json: %s", je.text);
    size_t i;
    json_t *c;
    double loss = NAN;
    json_array_foreach(json_object_get(idx, "cases"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "case")), name))
            loss = json_number_value(json_object_get(c, "loss"));
    json_decref(idx);
    ck_assert_msg(!isnan(loss), "INDEX.json: no case %s", name);
    return loss;
}

/* one forward in a fresh graph; results copied out. logits/hidden malloc'd (NULL if not
 * wanted); loss NAN without one. Returns 0 or -1 with err. */
typedef struct fwd {
    float *logits, *hidden;
    int64_t n_logits, n_hidden;
    int64_t logit_shape[3];
    int logit_ndim;
    double loss;
} fwd;

static int run(peft_base_model *m, const peft_model_inputs *pin, int backward, fwd *r, char *err,
               size_t errlen)
{
    peft_rng rng;
    peft_rng_seed(&rng, 42);
    peft_graph *g = peft_graph_new(&rng);
    ck_assert(g != NULL);
    peft_graph_set_recording(g, backward);
    peft_model_outputs out;
    memset(r, 0, sizeof *r);
    r->loss = NAN;
    int rc = m->arch->forward(m, g, pin, &out, err, errlen);
    if (rc == 0) {
        ck_assert(out.logits != NULL);
        r->n_logits = out.logits->numel;
        r->logit_ndim = out.logits->ndim;
        for (int i = 0; i < out.logits->ndim; i++) r->logit_shape[i] = out.logits->shape[i];
        r->logits = malloc((size_t)r->n_logits * sizeof(float));
        memcpy(r->logits, out.logits->data, (size_t)r->n_logits * sizeof(float));
        if (out.last_hidden_state) {
            r->n_hidden = out.last_hidden_state->numel;
            r->hidden = malloc((size_t)r->n_hidden * sizeof(float));
            memcpy(r->hidden, out.last_hidden_state->data, (size_t)r->n_hidden * sizeof(float));
        }
        if (out.loss) {
            r->loss = peft_f32(out.loss)[0];
            if (backward && out.loss->requires_grad)
                ck_assert_int_eq(peft_graph_backward(g, out.loss), 0);
        }
    }
    peft_graph_free(g);
    return rc;
}

static void fwd_free(fwd *r)
{
    free(r->logits);
    free(r->hidden);
}

/* ---- writable model directories ------------------------------------------------------------ */

/* a copy of the fixture model src in a temp dir with a patched config; caller tu_rmtree+free */
static char *copy_model(const char *src, const char *patch)
{
    char *dir = tu_tmpdir();
    tu_tensors ts = tu_tensors_read(src);
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    tu_write_config(src, dir, patch, TU_NULL_DELETES);
    return dir;
}

/* ---- the prompt-learning hook provider ------------------------------------------------------
 * Serves a case adapter's saved prompt_embeddings as PEFT does: prompt tuning (P, C) -> (B, P, C);
 * prefix tuning (P, 2*L*W) -> per layer l keys = columns [2l*W, (2l+1)*W), values the next W, i.e.
 * view(B, P, 2L, Hkv, D).permute(2, 0, 3, 1, 4) in the model's (B, P, Hkv*D) layout. The table
 * requires grad so that backward gives d(loss)/d(prompt_embeddings). */
typedef struct provider {
    peft_prompt_hooks hooks;
    peft_tensor *table; /* (P, width) */
    int64_t W;          /* prefix: Hkv * D per layer */
} provider;

static peft_tensor *rows(provider *p, peft_graph *g, int64_t B)
{
    const int64_t P = p->table->shape[0];
    peft_tensor *it = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){B, P});
    if (!it) return NULL;
    int32_t *ids = it->data;
    for (int64_t i = 0; i < B * P; i++) ids[i] = (int32_t)(i % P);
    int32_t bad;
    return op_embedding(g, p->table, ids, B, P, &bad); /* (B, P, width) */
}

static peft_tensor *hook_tokens(void *ud, peft_graph *g, int64_t B)
{
    return rows(ud, g, B);
}

static int hook_prefix(void *ud, peft_graph *g, int stack, int layer, int64_t B, peft_tensor **k,
                       peft_tensor **v)
{
    provider *p = ud;
    ck_assert_int_eq(stack, 0);
    peft_tensor *e = rows(p, g, B);
    ck_assert(e != NULL);
    *k = op_slice_lastdim(g, e, 2 * layer * p->W, p->W);
    *v = op_slice_lastdim(g, e, (2 * layer + 1) * p->W, p->W);
    return 0;
}

/* hooks over hf-peft/<case>/adapter/adapter_model.safetensors; prefix: W = Hkv * D of m */
static provider *provider_new(const char *case_name, int prefix, const peft_base_model *m)
{
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter/adapter_model.safetensors", case_name);
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, "prompt_embeddings");
    ck_assert(e && e->ndim == 2 && e->dtype == PEFT_DTYPE_F32);
    provider *p = calloc(1, sizeof *p);
    p->table = peft_tensor_new(PEFT_DTYPE_F32, 2, e->shape);
    memcpy(p->table->data, e->data, e->nbytes);
    peft_st_close(f);
    p->table->flags |= PEFT_T_PARAM;
    p->table->requires_grad = 1;
    ck_assert(peft_tensor_ensure_grad(p->table) != NULL);
    p->hooks.ud = p;
    p->hooks.n_virtual = p->table->shape[0];
    if (prefix) {
        p->W = (int64_t)m->n_kv_heads * m->head_dim;
        ck_assert_int_eq(p->table->shape[1], 2 * m->n_layers * p->W);
        p->hooks.layer_prefix = hook_prefix;
    } else {
        ck_assert_int_eq(p->table->shape[1], m->hidden_size);
        p->hooks.virtual_tokens = hook_tokens;
    }
    return p;
}

static void provider_free(provider *p)
{
    peft_tensor_free(p->table);
    free(p);
}

/* ---- LLaMA base model ---------------------------------------------------------------------- */

START_TEST(test_llama_logits_and_loss)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(LLAMA_DIR));
    ck_assert_str_eq(m->arch->model_type, "llama");
    ck_assert_str_eq(peft_model_class(m), "LlamaForCausalLM");
    ck_assert_str_eq(peft_model_task(m), "CAUSAL_LM");
    ck_assert_int_eq(m->n_layers, 2);
    ck_assert_int_eq(m->n_kv_heads, 2);
    ck_assert_int_eq(m->head_dim, 8);
    ck_assert_int_eq(m->hidden_size, 32);
    ck_assert_int_eq(m->is_encoder_decoder, 0);
    ck_assert_ptr_eq(m->word_embeddings, peft_model_find_param(m, "model.embed_tokens.weight")->t);

    tu_inputs in = tu_inputs_load(LLAMA_DIR);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    fwd r;
    char err[512] = "";
    ck_assert_msg(run(m, &pin, 0, &r, err, sizeof err) == 0, "%s", err);
    int64_t n;
    float *ref = tu_fixture_f32(LLAMA_DIR "/base_logits.safetensors", "logits", &n);
    ck_assert_int_eq(n, 2 * 8 * 128);
    ck_assert_int_eq(r.n_logits, n);
    double d = tu_max_abs_diff(r.logits, ref, n);
    printf("llama: max |logits - HF| = %.3g, loss %.7f (HF %.7f, diff %.3g)\n", d, r.loss,
           LLAMA_LOSS, fabs(r.loss - LLAMA_LOSS));
    ck_assert_msg(d <= 1e-4, "logits differ from HF by %g", d);
    ck_assert_msg(fabs(r.loss - LLAMA_LOSS) <= 1e-4, "loss %.7f, HF %.7f", r.loss, LLAMA_LOSS);
    ck_assert_int_eq(r.n_hidden, 2 * 8 * 32);
    fwd_free(&r);

    /* no mask, no labels: the unpadded row 0 is unchanged, no loss */
    peft_model_inputs pin2 = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = NULL, .labels = NULL};
    ck_assert_msg(run(m, &pin2, 0, &r, err, sizeof err) == 0, "%s", err);
    ck_assert(isnan(r.loss));
    ck_assert_msg(tu_max_abs_diff(r.logits, ref, 8 * 128) <= 1e-4, "row 0 without mask");
    fwd_free(&r);
    free(ref);
    tu_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

/* the linear and Conv1D sites of m in module order (embedding and norm sites left out) */
static size_t linear_sites(const peft_base_model *m, peft_site **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_sites && n < max; i++)
        if (m->sites[i]->info.kind == PEFT_SITE_LINEAR || m->sites[i]->info.kind == PEFT_SITE_CONV1D)
            out[n++] = m->sites[i];
    return n;
}

START_TEST(test_llama_params_and_sites)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(LLAMA_DIR));
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        total += m->params[i].t->numel;
        ck_assert_int_eq(m->params[i].t->requires_grad, 0);
    }
    ck_assert_int_eq(total, LLAMA_PARAMS);
    /* HF named_parameters() order */
    ck_assert_str_eq(m->params[0].name, "model.embed_tokens.weight");
    ck_assert_str_eq(m->params[1].name, "model.layers.0.self_attn.q_proj.weight");
    ck_assert_str_eq(m->params[8].name, "model.layers.0.input_layernorm.weight");
    ck_assert_str_eq(m->params[9].name, "model.layers.0.post_attention_layernorm.weight");
    ck_assert_str_eq(m->params[m->n_params - 2].name, "model.norm.weight");
    ck_assert_str_eq(m->params[m->n_params - 1].name, "lm_head.weight");

    static const char *const mods[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.o_proj", "mlp.gate_proj",   "mlp.up_proj",
                                       "mlp.down_proj"};
    static const int64_t in_f[] = {32, 32, 32, 32, 32, 32, 64}, out_f[] = {32, 16, 16, 32, 64, 64, 32};
    peft_site *lin[32];
    ck_assert_uint_eq(linear_sites(m, lin, 32), 2 * 7 + 1);
    /* + model.embed_tokens, input_layernorm and post_attention_layernorm x2, model.norm */
    ck_assert_uint_eq(m->n_sites, 2 * 7 + 1 + 1 + 4 + 1);
    ck_assert_int_eq(m->sites[0]->info.kind, PEFT_SITE_EMBEDDING);
    ck_assert_str_eq(m->sites[0]->info.name, "model.embed_tokens");
    peft_site *nm = peft_model_find_site(m, "model.norm");
    ck_assert(nm && nm->info.kind == PEFT_SITE_NORM && nm->info.norm_type == PEFT_NORM_RMS && !nm->info.bias);
    ck_assert_ptr_eq(nm, m->sites[m->n_sites - 2]);
    for (size_t i = 0; i < 14; i++) {
        char want[128];
        snprintf(want, sizeof want, "model.layers.%zu.%s", i / 7, mods[i % 7]);
        peft_site *s = lin[i];
        ck_assert_str_eq(s->info.name, want);
        ck_assert_int_eq(s->info.kind, PEFT_SITE_LINEAR);
        ck_assert_int_eq(s->info.layer_index, (int)(i / 7));
        ck_assert_int_eq(s->info.in_features, in_f[i % 7]);
        ck_assert_int_eq(s->info.out_features, out_f[i % 7]);
        ck_assert_int_eq(s->info.fan_in_fan_out, 0);
        ck_assert_ptr_null(s->info.bias);
        ck_assert_str_eq(s->info.model_type, "llama");
    }
    peft_site *lm = lin[14];
    ck_assert_str_eq(lm->info.name, "lm_head");
    ck_assert_int_eq(lm->info.layer_index, -1);
    ck_assert_int_eq(lm->info.in_features, 32);
    ck_assert_int_eq(lm->info.out_features, 128);
    peft_base_model_free(m);
}
END_TEST

/* tied embeddings: lm_head is embed_tokens (no lm_head.weight needed, counted once) */
START_TEST(test_llama_tied)
{
    char *dir = tu_tmpdir();
    tu_tensors ts = tu_tensors_read(LLAMA_DIR);
    tu_tensors_remove(&ts, "lm_head.weight");
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    tu_write_config(LLAMA_DIR, dir, "{\"tie_word_embeddings\": true}", TU_NULL_DELETES);
    peft_base_model *m = tu_model_load_ok(dir);
    int64_t total = 0;
    for (size_t i = 0; i < m->n_params; i++) total += m->params[i].t->numel;
    ck_assert_int_eq(total, LLAMA_PARAMS - 128 * 32);
    peft_site *lm = peft_model_find_site(m, "lm_head");
    ck_assert_ptr_nonnull(lm);
    ck_assert_ptr_eq(lm->info.weight, m->word_embeddings);

    /* logits = h @ embed^T: compare with the hidden states by hand */
    tu_inputs in = tu_inputs_load(LLAMA_DIR);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = NULL};
    fwd r;
    char err[512];
    ck_assert_msg(run(m, &pin, 0, &r, err, sizeof err) == 0, "%s", err);
    const float *E = m->word_embeddings->data;
    double dmax = 0;
    for (int64_t i = 0; i < 16; i++)
        for (int64_t v = 0; v < 128; v++) {
            double acc = 0;
            for (int64_t c = 0; c < 32; c++) acc += (double)r.hidden[i * 32 + c] * E[v * 32 + c];
            dmax = fmax(dmax, fabs(acc - r.logits[i * 128 + v]));
        }
    ck_assert_msg(dmax < 1e-5, "tied logits differ by %g", dmax);
    int64_t n;
    char cerr[256];
    ck_assert_int_eq(m->arch->count_params(m->config, NULL, &n, cerr, sizeof cerr), 0);
    ck_assert_int_eq(n, LLAMA_PARAMS - 128 * 32);
    fwd_free(&r);
    tu_inputs_free(&in);
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- counts from config.json alone ---------------------------------------------------------- */

static int64_t count_of(const char *rel, const char *class_name)
{
    json_error_t je;
    json_t *cfg = json_load_file(tu_fixture(rel), 0, &je);
    ck_assert_msg(cfg != NULL, "%s: %s", rel, je.text);
    const peft_arch *a = peft_arch_find(json_string_value(json_object_get(cfg, "model_type")));
    ck_assert(a && a->count_params);
    int64_t n = -1;
    char err[512];
    ck_assert_msg(a->count_params(cfg, class_name, &n, err, sizeof err) == 0, "%s", err);
    json_decref(cfg);
    return n;
}

START_TEST(test_count_params)
{
    ck_assert_int_eq(count_of(LLAMA_DIR "/config.json", NULL), LLAMA_PARAMS);
    ck_assert_int_eq(count_of(GPT2_DIR "/config.json", NULL), GPT2_PARAMS);
    /* GPT2LMHeadModel gpt2-large, tied: 50257*1280 + 1024*1280 + 36 * 19,677,440 + 2*1280 */
    int64_t large = count_of("hf-configs/gpt2-large/config.json", NULL);
    printf("gpt2-large (GPT2LMHeadModel): %lld parameters\n", (long long)large);
    ck_assert_int_eq(large, GPT2_LARGE_PARAMS);
    /* the classification heads: no lm_head, score (num_labels = 2 by default) without bias */
    ck_assert_int_eq(count_of(LLAMA_DIR "/config.json", "LlamaForSequenceClassification"),
                     LLAMA_PARAMS - 128 * 32 + 2 * 32);
    ck_assert_int_eq(count_of(GPT2_DIR "/config.json", "GPT2ForSequenceClassification"),
                     GPT2_PARAMS + 2 * 32);
    /* an unknown head class is an error naming it */
    json_t *cfg = json_load_file(tu_fixture(LLAMA_DIR "/config.json"), 0, NULL);
    int64_t n;
    char err[512];
    ck_assert_int_eq(peft_arch_find("llama")->count_params(cfg, "LlamaForTokenClassification", &n,
                                                           err, sizeof err), -1);
    ck_assert_has(err, "LlamaForTokenClassification");
    json_decref(cfg);
}
END_TEST

/* ---- config errors ------------------------------------------------------------------------- */

static void expect_config_error(const char *patch, const char *a, const char *b)
{
    char *dir = copy_model(LLAMA_DIR, patch);
    const char *e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, a);
    if (b) ck_assert_has(e, b);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_llama_config_errors)
{
    expect_config_error("{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 2.0}}", "rope_scaling",
                        "yarn");
    expect_config_error("{\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}",
                        "low_freq_factor", NULL);
    expect_config_error("{\"rope_scaling\": {\"rope_type\": \"linear\"}}", "factor", NULL);
    expect_config_error("{\"num_attention_heads\": 5}", "hidden_size", "num_attention_heads");
    expect_config_error("{\"num_key_value_heads\": 3}", "num_key_value_heads", NULL);
    expect_config_error("{\"hidden_size\": null}", "missing field", "hidden_size");
    expect_config_error("{\"intermediate_size\": \"big\"}", "intermediate_size", "integer");
    expect_config_error("{\"hidden_act\": \"quick_gelu\"}", "hidden_act", "quick_gelu");
    expect_config_error("{\"architectures\": [\"LlamaForQuestionAnswering\"]}",
                        "LlamaForQuestionAnswering", "LlamaForSequenceClassification");
    expect_config_error("{\"head_dim\": 16}", "head_dim", NULL);
    /* weights that do not fit the config name the tensor and both shapes */
    char *dir = copy_model(LLAMA_DIR, "{\"intermediate_size\": 48}");
    const char *e = tu_model_load_fails(dir);
    ck_assert_has(e, "model.layers.0.mlp.gate_proj.weight");
    ck_assert_has(e, "[64, 32]");
    ck_assert_has(e, "[48, 32]");
    tu_rmtree(dir);
    free(dir);
    /* rope_scaling: null is fine */
    dir = copy_model(LLAMA_DIR, "{\"rope_scaling\": null}");
    peft_base_model_free(tu_model_load_ok(dir));
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_llama_input_errors)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(LLAMA_DIR));
    tu_inputs in = tu_inputs_load(LLAMA_DIR);
    char err[512];
    fwd r;
    in.ids[11] = 128;
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "input_ids[1][3]");
    in.ids[11] = 3;
    in.labels[5] = 999;
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "labels[0][5]");
    in.labels[5] = 60;
    pin.labels_len = 1; /* a classification label layout on a causal LM */
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "labels_len");
    tu_inputs_free(&in);
    peft_base_model_free(m);
}
END_TEST

/* ---- prompt learning against PEFT's fixtures ----------------------------------------------- */

/* runs case (prompt or prefix) on the arch's fixture model through the test hooks: logits vs
 * peft_logits, loss vs the case loss, and (check_grad) d loss / d prompt_embeddings vs grads */
static void prompt_case(const char *model_dir, const char *case_name, int prefix, int check_grad)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(model_dir));
    provider *p = provider_new(case_name, prefix, m);
    m->prompt = &p->hooks;
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft/%s", case_name);
    tu_inputs in = tu_inputs_load(rel);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    fwd r;
    char err[512] = "";
    ck_assert_msg(run(m, &pin, check_grad, &r, err, sizeof err) == 0, "%s: %s", case_name, err);
    int64_t n;
    snprintf(rel, sizeof rel, "hf-peft/%s/peft_logits.safetensors", case_name);
    float *ref = tu_fixture_f32(rel, "logits", &n);
    ck_assert_int_eq(r.n_logits, n);
    ck_assert_int_eq(r.logit_shape[1], prefix ? in.T : in.T + p->hooks.n_virtual);
    double d = tu_max_abs_diff(r.logits, ref, n);
    double want = case_loss(case_name);
    double dg = 0;
    if (check_grad) {
        snprintf(rel, sizeof rel, "hf-peft/%s/grads.safetensors", case_name);
        int64_t ng;
        float *gref = tu_fixture_f32(rel, "prompt_encoder.default.embedding.weight", &ng);
        ck_assert_int_eq(ng, p->table->numel);
        dg = tu_max_abs_diff(p->table->grad, gref, ng);
        free(gref);
    }
    printf("%s: max |logits - PEFT| = %.3g, loss diff %.3g%s", case_name, d, fabs(r.loss - want),
           check_grad ? "" : "\n");
    if (check_grad) printf(", max |grad - PEFT| = %.3g\n", dg);
    ck_assert_msg(d <= 1e-4, "%s: logits differ by %g", case_name, d);
    ck_assert_msg(fabs(r.loss - want) <= 1e-4, "%s: loss %.7f, PEFT %.7f", case_name, r.loss, want);
    ck_assert_msg(dg <= 1e-4, "%s: prompt gradient differs by %g", case_name, dg);
    fwd_free(&r);
    free(ref);
    tu_inputs_free(&in);
    m->prompt = NULL;
    provider_free(p);
    peft_base_model_free(m);
}

START_TEST(test_llama_prompt) { prompt_case(LLAMA_DIR, "llama__prompt", 0, 1); }
END_TEST
START_TEST(test_llama_prefix) { prompt_case(LLAMA_DIR, "llama__prefix", 1, 1); }
END_TEST
START_TEST(test_llama_prefix_proj) { prompt_case(LLAMA_DIR, "llama__prefix_proj", 1, 0); }
END_TEST
START_TEST(test_gpt2_prompt) { prompt_case(GPT2_DIR, "gpt2__prompt", 0, 1); }
END_TEST
START_TEST(test_gpt2_prefix) { prompt_case(GPT2_DIR, "gpt2__prefix", 1, 1); }
END_TEST
START_TEST(test_gpt2_prefix_proj) { prompt_case(GPT2_DIR, "gpt2__prefix_proj", 1, 0); }
END_TEST

/* a hook returning the wrong shape is an error naming the hook, not a crash */
static peft_tensor *bad_tokens(void *ud, peft_graph *g, int64_t B)
{
    (void)ud;
    return peft_graph_tensor(g, 3, (int64_t[]){B, 2, 7});
}

START_TEST(test_hook_errors)
{
    peft_base_model *m = tu_model_load_ok(tu_fixture(LLAMA_DIR));
    peft_prompt_hooks h = {.ud = NULL, .n_virtual = 2, .virtual_tokens = bad_tokens};
    m->prompt = &h;
    tu_inputs in = tu_inputs_load(LLAMA_DIR);
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = in.labels};
    fwd r;
    char err[512];
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "prompt-tuning hook");
    ck_assert_has(err, "(2, 2, 32)");
    tu_inputs_free(&in);
    m->prompt = NULL;
    peft_base_model_free(m);
}
END_TEST

/* ---- sequence classification --------------------------------------------------------------- */

/* a *ForSequenceClassification directory from the fixture model src: its weights (minus
 * drop, if any) plus a random score.weight (L, 32); config patched with cls_patch */
static char *make_seqcls(const char *src, const char *drop, int64_t L, const char *cls_patch,
                         float **score)
{
    char *dir = tu_tmpdir();
    tu_tensors ts = tu_tensors_read(src);
    if (drop) tu_tensors_remove(&ts, drop);
    /* score.weight: N(0, 0.5) values, seeded */
    float *w = malloc((size_t)(L * 32) * sizeof *w);
    peft_rng r;
    peft_rng_seed(&r, 7);
    for (int64_t k = 0; k < L * 32; k++) w[k] = (float)(0.5 * peft_rng_normal(&r));
    tu_tensors_add(&ts, "score.weight", PEFT_DTYPE_F32, 2, (int64_t[]){L, 32}, w);
    *score = w;
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    tu_write_config(src, dir, cls_patch, TU_NULL_DELETES);
    return dir;
}

/* pooled logits and loss of the classification model vs the LM model's hidden states by hand:
 * row idx[b], logits = score @ h, CE (or MSE when L == 1) */
static void check_seqcls(const char *src, const char *drop, const char *cls_class,
                         const char *id2label, int64_t L, const int32_t *want_idx,
                         const int32_t *labels, peft_prompt_hooks *hooks)
{
    char patch[512];
    snprintf(patch, sizeof patch, "{\"architectures\": [\"%s\"], \"id2label\": %s, "
             "\"pad_token_id\": 0}", cls_class, id2label);
    float *W;
    char *dir = make_seqcls(src, drop, L, patch, &W);
    peft_base_model *cls = tu_model_load_ok(dir);
    peft_base_model *lm = tu_model_load_ok(tu_fixture(src));
    ck_assert_str_eq(peft_model_class(cls), cls_class);
    ck_assert_str_eq(peft_model_task(cls), "SEQ_CLS");
    peft_site *sc = peft_model_find_site(cls, "score");
    ck_assert_ptr_nonnull(sc);
    ck_assert_int_eq(sc->info.layer_index, -1);
    ck_assert_int_eq(sc->info.out_features, L);
    ck_assert_ptr_null(sc->info.bias);
    ck_assert_ptr_null(peft_model_find_param(cls, "lm_head.weight"));
    cls->prompt = lm->prompt = hooks;

    tu_inputs in = tu_inputs_load(src);
    peft_model_inputs pin = {in.B, in.T, in.ids, in.mask, labels, .labels_len = 1};
    peft_model_inputs pin_lm = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = NULL};
    fwd rc, rl;
    char err[512] = "";
    ck_assert_msg(run(cls, &pin, 1, &rc, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(run(lm, &pin_lm, 0, &rl, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(rc.logit_ndim, 2);
    ck_assert_int_eq(rc.logit_shape[0], in.B);
    ck_assert_int_eq(rc.logit_shape[1], L);
    const int64_t Tq = rl.n_hidden / (in.B * 32);
    double loss = 0, dmax = 0;
    for (int64_t b = 0; b < in.B; b++) {
        const float *h = rl.hidden + (b * Tq + want_idx[b]) * 32;
        double z[8], mx = -1e30, se = 0;
        for (int64_t j = 0; j < L; j++) {
            z[j] = 0;
            for (int64_t c = 0; c < 32; c++) z[j] += (double)W[j * 32 + c] * h[c];
            dmax = fmax(dmax, fabs(z[j] - rc.logits[b * L + j]));
            mx = fmax(mx, z[j]);
        }
        if (L == 1) {
            loss += (z[0] - labels[b]) * (z[0] - labels[b]) / (double)in.B;
            continue;
        }
        for (int64_t j = 0; j < L; j++) se += exp(z[j] - mx);
        loss += (mx + log(se) - z[labels[b]]) / (double)in.B;
    }
    printf("%s%s: pooled rows %d,%d: max |logits - hand| = %.3g, loss %.6f (hand %.6f)\n",
           cls_class, hooks ? " + prompt" : "", want_idx[0], want_idx[1], dmax, rc.loss, loss);
    ck_assert_msg(dmax <= 1e-5, "pooled logits differ from the hand computation by %g", dmax);
    ck_assert_msg(fabs(rc.loss - loss) <= 1e-5 * fmax(1.0, fabs(loss)), "loss %.7f, by hand %.7f",
                  rc.loss, loss);
    fwd_free(&rc);
    fwd_free(&rl);

    /* errors: label outside the classes, labels (B, T) */
    if (L > 1) {
        int32_t bad[2] = {(int32_t)L, 0};
        pin.labels = bad;
        ck_assert_int_eq(run(cls, &pin, 0, &rc, err, sizeof err), -1);
        ck_assert_has(err, "labels[0]");
        pin.labels = in.labels;
        pin.labels_len = 0;
        ck_assert_int_eq(run(cls, &pin, 0, &rc, err, sizeof err), -1);
        ck_assert_has(err, "labels_len");
    }
    cls->prompt = lm->prompt = NULL;
    tu_inputs_free(&in);
    free(W);
    peft_base_model_free(cls);
    peft_base_model_free(lm);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_gpt2_seqcls)
{
    /* row 1 = [43, 124, 73, 91, 56, 36, 0, 0]: the first pad (id 0) at 6 -> row 5; row 0 has
     * no pad -> argmax 0, (0 - 1) mod 8 = 7 */
    const int32_t idx[2] = {7, 5}, labels[2] = {2, 0};
    check_seqcls(GPT2_DIR, NULL, "GPT2ForSequenceClassification",
                 "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}", 3, idx, labels, NULL);
    /* num_labels 1: regression, MSE against the labels as floats */
    const int32_t targets[2] = {1, -2};
    check_seqcls(GPT2_DIR, NULL, "GPT2ForSequenceClassification", "{\"0\": \"score\"}", 1, idx,
                 targets, NULL);
}
END_TEST

START_TEST(test_llama_seqcls)
{
    const int32_t idx[2] = {7, 5}, labels[2] = {1, 2};
    check_seqcls(LLAMA_DIR, "lm_head.weight", "LlamaForSequenceClassification",
                 "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}", 3, idx, labels, NULL);
}
END_TEST

/* prompt tuning on a classification model: PEFT hands HF inputs_embeds only, so HF pools the
 * last position (P + T - 1) even on a padded row */
START_TEST(test_seqcls_prompt_pools_last)
{
    peft_base_model *probe = tu_model_load_ok(tu_fixture(LLAMA_DIR));
    provider *p = provider_new("llama__prompt", 0, probe);
    const int32_t idx[2] = {12, 12}, labels[2] = {0, 2};
    check_seqcls(LLAMA_DIR, "lm_head.weight", "LlamaForSequenceClassification",
                 "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}", 3, idx, labels, &p->hooks);
    provider_free(p);
    peft_base_model_free(probe);
    probe = tu_model_load_ok(tu_fixture(GPT2_DIR));
    p = provider_new("gpt2__prompt", 0, probe);
    check_seqcls(GPT2_DIR, NULL, "GPT2ForSequenceClassification",
                 "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}", 3, idx, labels, &p->hooks);
    provider_free(p);
    peft_base_model_free(probe);
}
END_TEST

/* the backward of the classification path (prompt rows -> layers -> gather -> score -> CE or
 * MSE) against central finite differences of the loss w.r.t. the prompt table */
static void fd_seqcls(const char *src, const char *drop, const char *cls_class, const char *case_name,
                      const char *id2label, int64_t L, const int32_t *labels)
{
    char patch[512];
    snprintf(patch, sizeof patch, "{\"architectures\": [\"%s\"], \"id2label\": %s, "
             "\"pad_token_id\": 0}", cls_class, id2label);
    float *W;
    char *dir = make_seqcls(src, drop, L, patch, &W);
    peft_base_model *m = tu_model_load_ok(dir);
    provider *p = provider_new(case_name, 0, m);
    m->prompt = &p->hooks;
    tu_inputs in = tu_inputs_load(src);
    peft_model_inputs pin = {in.B, in.T, in.ids, in.mask, labels, .labels_len = 1};
    fwd r;
    char err[512] = "";
    ck_assert_msg(run(m, &pin, 1, &r, err, sizeof err) == 0, "%s", err);
    fwd_free(&r);
    float *x = p->table->data;
    double worst = 0;
    for (int64_t k = 0; k < p->table->numel; k += 17) {
        const float x0 = x[k], eps = 1e-2f;
        x[k] = x0 + eps;
        ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), 0);
        double lp = r.loss;
        fwd_free(&r);
        x[k] = x0 - eps;
        ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), 0);
        double lm = r.loss;
        fwd_free(&r);
        x[k] = x0;
        double fd = (lp - lm) / (2.0 * eps), an = p->table->grad[k];
        double e = fabs(fd - an) / fmax(1e-2, fabs(fd) + fabs(an));
        worst = fmax(worst, e);
        ck_assert_msg(e < 2e-2, "%s: d loss / d prompt[%lld]: analytic %g, finite difference %g",
                      cls_class, (long long)k, an, fd);
    }
    printf("%s (%s): prompt gradient vs finite differences, worst relative error %.3g\n",
           cls_class, L == 1 ? "MSE" : "CE", worst);
    m->prompt = NULL;
    provider_free(p);
    tu_inputs_free(&in);
    free(W);
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}

START_TEST(test_seqcls_gradient)
{
    const int32_t labels[2] = {2, 1}, targets[2] = {1, -1};
    fd_seqcls(LLAMA_DIR, "lm_head.weight", "LlamaForSequenceClassification", "llama__prompt",
              "{\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}", 3, labels);
    fd_seqcls(GPT2_DIR, NULL, "GPT2ForSequenceClassification", "gpt2__prompt", "{\"0\": \"y\"}",
              1, targets);
}
END_TEST

/* pad at position 0 -> (0 - 1) mod T = T - 1; no pad_token_id: B > 1 is an error, B = 1 pools
 * the last position; num_labels from "num_labels" when there is no id2label */
START_TEST(test_seqcls_pooling_edges)
{
    float *W;
    char *dir = make_seqcls(GPT2_DIR, NULL, 4,
                            "{\"architectures\": [\"GPT2ForSequenceClassification\"], "
                            "\"num_labels\": 4, \"pad_token_id\": 61}", &W);
    peft_base_model *m = tu_model_load_ok(dir);
    ck_assert_int_eq(peft_model_find_site(m, "score")->info.out_features, 4);
    tu_inputs in = tu_inputs_load(GPT2_DIR); /* row 0 starts with 61 */
    peft_model_inputs pin = {.B = in.B, .T = in.T, .input_ids = in.ids, .attention_mask = in.mask, .labels = NULL};
    fwd r, ref;
    char err[512];
    ck_assert_msg(run(m, &pin, 0, &r, err, sizeof err) == 0, "%s", err);
    /* row 0: pad (61) at 0 -> pooled 7, the same as the last position */
    peft_base_model *lm = tu_model_load_ok(tu_fixture(GPT2_DIR));
    ck_assert_int_eq(run(lm, &pin, 0, &ref, err, sizeof err), 0);
    const float *h = ref.hidden + 7 * 32;
    for (int j = 0; j < 4; j++) {
        double z = 0;
        for (int c = 0; c < 32; c++) z += (double)W[j * 32 + c] * h[c];
        ck_assert_msg(fabs(z - r.logits[j]) < 1e-5, "row 0 class %d: %g vs %g", j, z, r.logits[j]);
    }
    fwd_free(&r);
    fwd_free(&ref);
    peft_base_model_free(m);
    peft_base_model_free(lm);
    tu_rmtree(dir);
    free(dir);
    free(W);

    dir = make_seqcls(GPT2_DIR, NULL, 2,
                      "{\"architectures\": [\"GPT2ForSequenceClassification\"]}", &W);
    m = tu_model_load_ok(dir);
    ck_assert_int_eq(peft_model_find_site(m, "score")->info.out_features, 2); /* default 2 */
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "padding token");
    pin.B = 1;
    ck_assert_msg(run(m, &pin, 0, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(r.logit_shape[0], 1);
    fwd_free(&r);
    peft_base_model_free(m);
    /* multi-label needs float targets: refused at the loss, not a crash */
    tu_write_config(GPT2_DIR, dir, "{\"architectures\": [\"GPT2ForSequenceClassification\"], "
                    "\"pad_token_id\": 0, \"problem_type\": \"multi_label_classification\"}",
                    TU_NULL_DELETES);
    m = tu_model_load_ok(dir);
    int32_t lab[2] = {0, 1};
    pin.B = 2;
    pin.labels = lab;
    pin.labels_len = 1;
    ck_assert_int_eq(run(m, &pin, 0, &r, err, sizeof err), -1);
    ck_assert_has(err, "multi_label_classification");
    peft_base_model_free(m);
    tu_write_config(GPT2_DIR, dir, "{\"architectures\": [\"GPT2ForSequenceClassification\"], "
                    "\"problem_type\": \"ranking\"}", TU_NULL_DELETES);
    const char *e = tu_model_load_fails(dir);
    ck_assert_has(e, "config.json");
    ck_assert_has(e, "ranking");
    tu_inputs_free(&in);
    tu_rmtree(dir);
    free(dir);
    free(W);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("llama");
    TCase *tc = tcase_create("llama");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_llama_logits_and_loss);
    tcase_add_test(tc, test_llama_params_and_sites);
    tcase_add_test(tc, test_llama_tied);
    tcase_add_test(tc, test_count_params);
    tcase_add_test(tc, test_llama_config_errors);
    tcase_add_test(tc, test_llama_input_errors);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("prompt_hooks");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, test_llama_prompt);
    tcase_add_test(tp, test_llama_prefix);
    tcase_add_test(tp, test_llama_prefix_proj);
    tcase_add_test(tp, test_gpt2_prompt);
    tcase_add_test(tp, test_gpt2_prefix);
    tcase_add_test(tp, test_gpt2_prefix_proj);
    tcase_add_test(tp, test_hook_errors);
    suite_add_tcase(s, tp);
    TCase *tq = tcase_create("seq_cls");
    tcase_set_timeout(tq, 60);
    tcase_add_test(tq, test_gpt2_seqcls);
    tcase_add_test(tq, test_llama_seqcls);
    tcase_add_test(tq, test_seqcls_prompt_pools_last);
    tcase_add_test(tq, test_seqcls_pooling_edges);
    tcase_add_test(tq, test_seqcls_gradient);
    suite_add_tcase(s, tq);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
