/* test_prompt_learning.c — prefix tuning and prompt tuning (plugins/prefix, plugins/prompt and
 * core/peft_prompt.c): every prefix / prompt fixture case of Python PEFT 0.13.2 through the
 * contract table, PEFT's own saved adapters loaded and run, finite-difference gradients of the
 * plugins' kernels called through the vtable, the per-layer block layout (decoder-only and
 * encoder-decoder), and the PEFT-layer rules: counts, refused status, hooks off when disabled,
 * one active adapter, no mixing, config errors naming the field. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model/model_internal.h" /* white-box: reads the model's insides */
#include "core/io/cfg.h"
#include "contract.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "core/tuner/registry.h"
#include "peft/safetensors.h"
#include "prompt_harness.h"
#include "testutil.h"
#include "peft/tokenizer.h"
#include "peft/warn.h"

/* the fixture cases run here: those whose architecture has the prompt hooks */
static const char *const fixture_cases[] = {
    "gpt2__prompt", "gpt2__prefix", "gpt2__prefix_proj",
    "llama__prompt", "llama__prefix", "llama__prefix_proj",
    "bert_seqcls__prompt", "bert_seqcls__prefix", "bert_seqcls__prefix_proj",
    "bert_tokcls__prompt", "bert_tokcls__prefix", "bert_qa__prompt", "bert_qa__prefix",
    "t5__prompt", "t5__prefix", "t5__prefix_proj",
};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

/* ---- helpers --------------------------------------------------------------------------------- */

static json_t *case_entry(const char *name)
{
    static json_t *idx;
    if (!idx) idx = json_load_file(tu_fixture("hf-peft/INDEX.json"), 0, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(idx, "cases"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "case")), name)) return c;
    return NULL;
}

static peft_base_model *load_base(peft_ctx *ctx, const char *arch)
{
    char rel[256];
    snprintf(rel, sizeof rel, "hf-peft/_models/%s", arch);
    peft_base_model *b = NULL;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture(rel), &b) == 0, "%s", peft_errmsg(ctx));
    return b;
}

static peft_model *make_model(peft_ctx *ctx, const char *arch, const char *config)
{
    peft_base_model *b = load_base(ctx, arch);
    peft_model *m = NULL;
    ck_assert_msg(peft_get_peft_model(ctx, b, config, NULL, 0, &m) == 0, "%s", peft_errmsg(ctx));
    return m;
}

/* the error a config gets on arch, which must contain `want` */
static void config_refused(const char *arch, const char *config, const char *want)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *b = load_base(ctx, arch);
    peft_model *m = NULL;
    ck_assert_int_ne(peft_get_peft_model(ctx, b, config, NULL, 0, &m), 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), want), "error '%s' lacks '%s'", peft_errmsg(ctx), want);
    peft_base_model_free(b);
    peft_ctx_free(ctx);
}

static void run_forward(peft_model *m, peft_graph *g, peft_inputs *in, peft_model_outputs *out,
                        int record)
{
    peft_graph_reset(g);
    peft_graph_set_recording(g, record);
    peft_model_inputs mi;
    peft_inputs_view(in, &mi);
    ck_assert_msg(peft_model_forward(m, g, &mi, out) == 0, "%s", peft_errmsg(peft_model_ctx(m)));
}

static double max_diff_file(const char *rel, const char *key, const peft_tensor *t)
{
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *e = peft_st_find(f, key);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq((int64_t)(e->nbytes / 4), t->numel);
    double d = tu_max_abs_diff((const float *)e->data, peft_f32(t), t->numel);
    peft_st_close(f);
    return d;
}

/* ---- PEFT's saved adapters load and give PEFT's outputs --------------------------------------- */

START_TEST(peft_saved_adapter)
{
    const char *name = fixture_cases[_i];
    json_t *entry = case_entry(name);
    ck_assert_ptr_nonnull(entry);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft/%s", json_string_value(json_object_get(entry, "base_model_dir")));
    peft_base_model *b = NULL;
    ck_assert(peft_load_base_model(ctx, tu_fixture(rel), &b) == 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/adapter", name);
    peft_model *m = NULL;
    ck_assert_msg(peft_from_pretrained(ctx, b, tu_fixture(rel), NULL, 0, &m) == 0, "%s: %s", name,
                  peft_errmsg(ctx));
    peft_inputs in;
    snprintf(rel, sizeof rel, "hf-peft/%s/inputs.json", name);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_outputs out;
    run_forward(m, g, &in, &out, 0);
    snprintf(rel, sizeof rel, "hf-peft/%s/peft_logits.safetensors", name);
    peft_tensor *o = out.logits ? out.logits : out.start_logits;
    double d = max_diff_file(rel, out.logits ? "logits" : "start_logits", o);
    ck_assert_msg(d <= 1e-4, "%s: PEFT's saved adapter gives outputs off by %g", name, d);
    /* loaded for inference: nothing trains; the saved table is the only adapter tensor */
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 0);
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

#define PROMPT_CFG(nts) "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":3,\"token_dim\":8," \
                        "\"num_transformer_submodules\":" #nts ",\"num_attention_heads\":2," \
                        "\"num_layers\":2}"
#define PREFIX_CFG(nts, proj) "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":3," \
                              "\"token_dim\":8,\"num_transformer_submodules\":" #nts "," \
                              "\"num_attention_heads\":2,\"num_layers\":2," \
                              "\"encoder_hidden_size\":5,\"prefix_projection\":" #proj "}"

START_TEST(grad_prompt_embeddings)
{
    harness h;
    harness_open(&h, "prompt", PROMPT_CFG(1), 0);
    check_grads(&h, "prompt embeddings");
    harness_close(&h);
    /* encoder-decoder: 2P rows, the second half unused (zero gradient, as PEFT) */
    harness_open(&h, "prompt", PROMPT_CFG(2), 1);
    peft_param_ref ref;
    ck_assert_int_eq(h.vt->state_dict(h.state, &ref, 1), 1);
    ck_assert_int_eq(ref.tensor->shape[0], 2 * HP);
    check_grads(&h, "prompt embeddings (2 submodules)");
    for (int64_t i = HP * HC; i < 2 * HP * HC; i++) ck_assert(ref.tensor->grad[i] == 0.0f);
    harness_close(&h);
}
END_TEST

START_TEST(grad_prefix_table)
{
    harness h;
    harness_open(&h, "prefix", PREFIX_CFG(1, false), 0);
    check_grads(&h, "prefix table");
    harness_close(&h);
    harness_open(&h, "prefix", PREFIX_CFG(2, false), 1);
    check_grads(&h, "prefix table (encoder-decoder)");
    harness_close(&h);
}
END_TEST

START_TEST(grad_prefix_projection)
{
    harness h;
    harness_open(&h, "prefix", PREFIX_CFG(1, true), 0);
    peft_param_ref refs[8];
    ck_assert_int_eq(h.vt->state_dict(h.state, refs, 8), 5);
    ck_assert_str_eq(refs[1].memory_name, "transform.0.weight");
    ck_assert_int_eq(refs[1].tensor->shape[0], 5); /* (encoder_hidden_size, token_dim) */
    ck_assert_int_eq(refs[3].tensor->shape[0], 2 * HL * HC);
    check_grads(&h, "prefix MLP");
    harness_close(&h);
    harness_open(&h, "prefix", PREFIX_CFG(2, true), 1);
    check_grads(&h, "prefix MLP (encoder-decoder)");
    harness_close(&h);
}
END_TEST

/* which block of the table each (stack, layer) gets: PEFT's view/permute/split */
START_TEST(prefix_block_layout)
{
    for (int enc_dec = 0; enc_dec < 2; enc_dec++) {
        harness h;
        harness_open(&h, "prefix", enc_dec ? PREFIX_CFG(2, false) : PREFIX_CFG(1, false), enc_dec);
        peft_param_ref ref;
        h.vt->state_dict(h.state, &ref, 1);
        const int64_t N = 2 * HL * HC;
        ck_assert_int_eq(ref.tensor->shape[1], N);
        float *t = peft_f32(ref.tensor);
        for (int64_t i = 0; i < ref.tensor->numel; i++) t[i] = (float)i; /* t[p][c] = p*N + c */
        peft_graph *g = peft_graph_new(&trng);
        for (int stack = 0; stack < 3; stack++)
            for (int l = 0; l < HL + 1; l++) {
                peft_tensor *k, *v;
                int rc = h.vt->prefix_kv(h.state, g, stack, l, HB, &k, &v);
                int has = l < HL && (enc_dec ? stack > 0 : stack == 0);
                ck_assert_int_eq(rc, has ? 0 : 1);
                if (!has) continue;
                /* decoder-only: blocks 2l, 2l+1; encoder-decoder: (4l + j) mod 2L */
                int64_t j0 = enc_dec ? (stack == 1 ? 0 : 2) : 0;
                int64_t bk = ((enc_dec ? 4 : 2) * l + j0) % (2 * HL), bv = (bk + 1) % (2 * HL);
                ck_assert_int_eq(k->ndim, 3);
                ck_assert_int_eq(k->shape[0], HB);
                ck_assert_int_eq(k->shape[1], HP);
                ck_assert_int_eq(k->shape[2], HC);
                for (int64_t b = 0; b < HB; b++)
                    for (int64_t p = 0; p < HP; p++)
                        for (int64_t c = 0; c < HC; c++) {
                            ck_assert(peft_f32(k)[(b * HP + p) * HC + c] == (float)(p * N + bk * HC + c));
                            ck_assert(peft_f32(v)[(b * HP + p) * HC + c] == (float)(p * N + bv * HC + c));
                        }
            }
        peft_graph_free(g);
        harness_close(&h);
    }
}
END_TEST

/* the MLP's saved output, loaded, gives the very keys and values the MLP gave */
START_TEST(prefix_projection_save_load)
{
    harness h;
    harness_open(&h, "prefix", PREFIX_CFG(1, true), 0);
    peft_graph *g = peft_graph_new(&trng);
    peft_tensor *before[16];
    int n = harness_outputs(&h, g, before, 16);
    float *copy[16];
    for (int i = 0; i < n; i++) {
        copy[i] = malloc((size_t)before[i]->numel * sizeof(float));
        memcpy(copy[i], before[i]->data, (size_t)before[i]->numel * sizeof(float));
    }
    peft_tensor *saved = h.vt->prompt_to_save(h.state);
    ck_assert_int_eq(saved->shape[0], HP);
    ck_assert_int_eq(saved->shape[1], 2 * HL * HC);
    char err[512] = "";
    ck_assert_msg(h.vt->prompt_load(h.state, saved, err, sizeof err) == 0, "%s", err);
    peft_param_ref refs[8];
    ck_assert_int_eq(h.vt->state_dict(h.state, refs, 8), 1); /* the MLP is gone */
    peft_graph_reset(g);
    peft_tensor *after[16];
    ck_assert_int_eq(harness_outputs(&h, g, after, 16), n);
    for (int i = 0; i < n; i++) {
        ck_assert(memcmp(copy[i], after[i]->data, (size_t)after[i]->numel * sizeof(float)) == 0);
        free(copy[i]);
    }
    /* a wrong shape is refused with both shapes named */
    const int64_t bad[2] = {HP, 7};
    peft_tensor *wrong = peft_tensor_new(PEFT_DTYPE_F32, 2, bad);
    ck_assert_int_ne(h.vt->prompt_load(h.state, wrong, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "[3, 7]") && strstr(err, "[3, 32]"), "%s", err);
    peft_tensor_free(wrong);
    peft_tensor_free(saved);
    peft_graph_free(g);
    harness_close(&h);
}
END_TEST

START_TEST(prompt_sample_vocab)
{
    harness h;
    harness_open(&h, "prompt", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":4,"
                 "\"token_dim\":8,\"num_transformer_submodules\":1,"
                 "\"prompt_tuning_init\":\"SAMPLE_VOCAB\"}", 0);
    h.vt->destroy(h.state); /* the harness perturbed it: make a fresh one */
    char err[512] = "";
    h.state = h.vt->prompt_init(h.parsed, &h.cfg, &h.info, "default", &trng, err, sizeof err);
    ck_assert_msg(h.state, "%s", err);
    peft_param_ref ref;
    h.vt->state_dict(h.state, &ref, 1);
    for (int64_t r = 0; r < 4; r++) { /* each row is some row of the vocabulary */
        int found = 0;
        for (int64_t v = 0; v < HV && !found; v++)
            found = !memcmp(peft_f32(ref.tensor) + r * HC, peft_f32(h.we) + v * HC, HC * sizeof(float));
        ck_assert_msg(found, "row %ld is no word embedding", (long)r);
    }
    harness_close(&h);
}
END_TEST

/* ---- the PEFT layer ---------------------------------------------------------------------------- */

#define GPT2_PREFIX "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":5}"
#define GPT2_PROMPT "{\"peft_type\":\"PROMPT_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":4}"

START_TEST(config_filled_from_model)
{
    peft_ctx *ctx = peft_ctx_new(1);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", GPT2_PREFIX);
    char *tmp = tu_tmpdir(), path[4096];
    ck_assert(peft_save_pretrained(m, tmp, NULL, 0, 1) == 0);
    snprintf(path, sizeof path, "%s/adapter_config.json", tmp);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *want = json_object_get(case_entry("gpt2__prefix"), "adapter_config");
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
        if (!strcmp(k, "base_model_name_or_path")) continue;
        ck_assert_msg(json_equal(json_object_get(cfg, k), v), "field %s", k);
    }
    ck_assert_int_eq(json_object_size(cfg), json_object_size(want));
    json_decref(cfg);
    tu_rmtree(tmp);
    free(tmp);
    /* 5 x (2 layers x 2 x 32) */
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 640);
    ck_assert_int_eq(a, 31616 + 640);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(hooks_follow_disable_and_delete)
{
    peft_ctx *ctx = peft_ctx_new(2);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", GPT2_PROMPT);
    peft_base_model *b = peft_get_base_model(m);
    ck_assert_ptr_nonnull(b->prompt);
    ck_assert_int_eq(b->prompt->n_virtual, 4);
    ck_assert_ptr_nonnull(b->prompt->virtual_tokens);
    ck_assert_ptr_null(b->prompt->layer_prefix);
    ck_assert(peft_disable_adapter(m) == 0);
    ck_assert_ptr_null(b->prompt);
    ck_assert(peft_enable_adapter(m) == 0);
    ck_assert_ptr_nonnull(b->prompt);

    /* a second prompt adapter: added inactive, switched to, never both active */
    ck_assert_msg(peft_add_adapter(m, "other", "{\"peft_type\":\"PROMPT_TUNING\",\"task_type\":"
                                   "\"CAUSAL_LM\",\"num_virtual_tokens\":2}") == 0,
                  "%s", peft_errmsg(ctx));
    ck_assert_int_eq(b->prompt->n_virtual, 4);
    ck_assert(peft_set_adapter(m, "other") == 0);
    ck_assert_int_eq(b->prompt->n_virtual, 2);
    const char *both[2] = {"default", "other"};
    ck_assert_int_eq(peft_set_adapters(m, both, 2), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(ctx), "only one prompt-learning adapter"), "%s", peft_errmsg(ctx));
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 2 * 32);          /* only the active one trains */
    ck_assert_int_eq(a, 31616 + 6 * 32); /* both count */
    ck_assert(peft_delete_adapter(m, "other") == 0);
    ck_assert_int_eq(b->prompt->n_virtual, 4); /* the remaining one is active again */
    ck_assert(peft_delete_adapter(m, "default") == 0);
    ck_assert_ptr_null(b->prompt);

    /* unload hands back a base without hooks */
    ck_assert(peft_add_adapter(m, "x", GPT2_PREFIX) == 0);
    ck_assert(peft_set_adapter(m, "x") == 0);
    ck_assert_ptr_nonnull(b->prompt);
    peft_base_model *back = NULL;
    ck_assert(peft_unload(m, &back) == 0);
    ck_assert_ptr_eq(back, b);
    ck_assert_ptr_null(back->prompt);
    peft_base_model_free(back);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(status_refused_as_peft)
{
    peft_ctx *ctx = peft_ctx_new(3);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", GPT2_PREFIX);
    char *json = (char *)1;
    ck_assert_int_eq(peft_get_model_status(m, &json), PEFT_EINVAL);
    ck_assert_ptr_null(json);
    ck_assert_msg(strstr(peft_errmsg(ctx), "get_model_status() got an invalid PeftModel instance; "
                         "prefix tuning and adaption prompt are not supported"), "%s", peft_errmsg(ctx));
    ck_assert_int_eq(peft_get_layer_status(m, &json), PEFT_EINVAL);
    ck_assert_msg(strstr(peft_errmsg(ctx), "get_layer_status()"), "%s", peft_errmsg(ctx));
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(no_mixing)
{
    peft_ctx *ctx = peft_ctx_new(4);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", GPT2_PREFIX);
    ck_assert_int_ne(peft_add_adapter(m, "l", "{\"peft_type\":\"LORA\",\"target_modules\":[\"c_attn\"]}"), 0);
    ck_assert_int_ne(peft_add_adapter(m, "p", GPT2_PROMPT), 0); /* another method */
    peft_model_free(m);
    peft_base_model *b = load_base(ctx, "gpt2");
    ck_assert_int_ne(peft_inject_adapter_in_model(ctx, b, GPT2_PREFIX, NULL, &m), 0);
    ck_assert_msg(strstr(peft_errmsg(ctx), "inject_adapter_in_model"), "%s", peft_errmsg(ctx));
    ck_assert(peft_get_peft_model(ctx, b, "{\"peft_type\":\"LORA\",\"target_modules\":[\"c_attn\"]}", NULL, 1, &m) == 0);
    ck_assert_msg(peft_add_adapter(m, "p", GPT2_PROMPT) == 0, "%s", peft_errmsg(ctx)); /* mixed: allowed */
    ck_assert_ptr_null(b->prompt); /* added inactive */
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(config_errors)
{
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\"}", "'num_virtual_tokens' is required");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_token\":5}",
                   "did you mean 'num_virtual_tokens'");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":0}",
                   "'num_virtual_tokens' must be a positive integer");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"prefix_projection\":\"yes\"}", "'prefix_projection' must be a boolean");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"num_layers\":3}", "'num_layers' is 3 but the gpt2 model has 2");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"token_dim\":64}", "'token_dim' is 64");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"num_attention_heads\":2}", "'num_attention_heads' is 2");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"num_transformer_submodules\":2}", "'num_transformer_submodules' is 2");
    config_refused("gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"num_virtual_tokens\":5,"
                   "\"target_modules\":[\"c_attn\"]}", "unknown field 'target_modules'");
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"prompt_tuning_init\":\"VOCAB\"}", "allowed values: \"RANDOM\"");
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"token_dim\":16}", "'token_dim' is 16");
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"prompt_tuning_init\":\"TEXT\",\"prompt_tuning_init_text\":\"hi\"}",
                   "needs field 'tokenizer_name_or_path'");
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"prompt_tuning_init\":\"TEXT\",\"tokenizer_name_or_path\":\"gpt2\"}",
                   "needs field 'prompt_tuning_init_text'");
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"tokenizer_kwargs\":{}}", "'tokenizer_kwargs' is only valid");
    /* TEXT needs a tokenizer to train from: the fixture GPT-2 directory has none */
    config_refused("gpt2", "{\"peft_type\":\"PROMPT_TUNING\",\"num_virtual_tokens\":5,"
                   "\"prompt_tuning_init\":\"TEXT\",\"prompt_tuning_init_text\":\"hi\","
                   "\"tokenizer_name_or_path\":\"gpt2\"}", "needs a tokenizer");
}
END_TEST

/* TEXT init: the text through the model's tokenizer, repeated up to the virtual tokens, the
 * rows of the word embeddings (PEFT's PromptEmbedding init) — on the embedded default model,
 * which ships a tokenizer.json */
START_TEST(text_init_uses_the_tokenizer)
{
    peft_ctx *ctx = peft_ctx_new(5);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, "examples/base-model", &b) == 0, "%s", peft_errmsg(ctx));
    const char *cfg = "{\"peft_type\":\"PROMPT_TUNING\",\"task_type\":\"CAUSAL_LM\",\"num_virtual_tokens\":7,"
                      "\"prompt_tuning_init\":\"TEXT\",\"prompt_tuning_init_text\":\"mir: \","
                      "\"tokenizer_name_or_path\":\"examples/base-model\"}";
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, b, cfg, NULL, 0, &m) == 0, "%s", peft_errmsg(ctx));
    peft_tokenizer *tk;
    char err[256];
    ck_assert_msg(peft_tokenizer_load("examples/base-model", &tk, err, sizeof err) == 0, "%s", err);
    int32_t *ids;
    size_t n;
    ck_assert(peft_tokenizer_encode(tk, "mir: ", 5, 1, &ids, &n, err, sizeof err) == 0 && n > 0);
    peft_state_dict *sd;
    ck_assert(peft_trainable_parameters(m, &sd) == 0);
    ck_assert_int_eq(sd->n, 1);
    const peft_tensor *table = sd->tensors[0], *we = b->word_embeddings;
    int64_t C = table->shape[1];
    float *row = malloc((size_t)C * sizeof *row), *all = malloc((size_t)we->numel * sizeof *all);
    peft_tensor_to_f32(we, all);
    for (int64_t r = 0; r < 7; r++) {
        memcpy(row, all + (int64_t)ids[r % (int64_t)n] * C, (size_t)C * sizeof *row);
        ck_assert_msg(memcmp(row, peft_f32(table) + r * C, (size_t)C * sizeof *row) == 0,
                      "virtual token %lld is not the embedding of text token %d", (long long)r, ids[r % (int64_t)n]);
    }
    free(row);
    free(all);
    free(ids);
    peft_state_dict_free(sd);
    peft_tokenizer_free(tk);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

/* a TEXT adapter saved elsewhere (inference_mode true) loads: no init runs */
START_TEST(text_adapter_loads)
{
    peft_ctx *ctx = peft_ctx_new(5);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", GPT2_PROMPT);
    char *tmp = tu_tmpdir(), path[4096];
    ck_assert(peft_save_pretrained(m, tmp, NULL, 0, 1) == 0);
    peft_model_free(m);
    snprintf(path, sizeof path, "%s/adapter_config.json", tmp);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_object_set_new(cfg, "prompt_tuning_init", json_string("TEXT"));
    json_object_set_new(cfg, "prompt_tuning_init_text", json_string("count up"));
    json_object_set_new(cfg, "tokenizer_name_or_path", json_string("gpt2"));
    ck_assert(json_dump_file(cfg, path, 0) == 0);
    json_decref(cfg);
    peft_base_model *b = load_base(ctx, "gpt2");
    ck_assert_msg(peft_from_pretrained(ctx, b, tmp, NULL, 0, &m) == 0, "%s", peft_errmsg(ctx));
    peft_model_free(m);

    /* a prompt_embeddings of the wrong shape: the file, the key and both shapes */
    cfg = json_load_file(path, 0, NULL);
    json_object_set_new(cfg, "num_virtual_tokens", json_integer(3));
    ck_assert(json_dump_file(cfg, path, 0) == 0);
    json_decref(cfg);
    b = load_base(ctx, "gpt2");
    ck_assert_int_ne(peft_from_pretrained(ctx, b, tmp, NULL, 0, &m), 0);
    const char *e = peft_errmsg(ctx);
    ck_assert_msg(strstr(e, "adapter_model.safetensors") && strstr(e, "'prompt_embeddings'") &&
                      strstr(e, "[4, 32]") && strstr(e, "[3, 32]"), "%s", e);
    peft_base_model_free(b);
    tu_rmtree(tmp);
    free(tmp);
    peft_ctx_free(ctx);
}
END_TEST

/* a full training step: the loss falls and the saved table follows the trained values */
START_TEST(training_moves_the_prompt)
{
    peft_ctx *ctx = peft_ctx_new(6);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = make_model(ctx, "gpt2", "{\"peft_type\":\"PREFIX_TUNING\",\"task_type\":"
                               "\"CAUSAL_LM\",\"num_virtual_tokens\":4,\"prefix_projection\":true}");
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft/gpt2__prefix/inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_state_dict *tp;
    ck_assert(peft_trainable_parameters(m, &tp) == 0);
    ck_assert_int_eq(tp->n, 5);
    ck_assert_str_eq(tp->names[0], "prompt_encoder.default.embedding.weight");
    ck_assert_str_eq(tp->names[4], "prompt_encoder.default.transform.2.bias");
    peft_model_outputs out;
    double first = 0, last = 0;
    for (int step = 0; step < 20; step++) {
        run_forward(m, g, &in, &out, 1);
        last = peft_f32(out.loss)[0];
        if (step == 0) first = last;
        ck_assert(peft_graph_backward(g, out.loss) == 0);
        for (size_t i = 0; i < tp->n; i++) { /* plain SGD */
            peft_tensor *t = tp->tensors[i];
            for (int64_t j = 0; j < t->numel; j++) peft_f32(t)[j] -= 0.5f * t->grad[j];
            peft_tensor_zero_grad(t);
        }
    }
    ck_assert_msg(last < first - 0.05, "loss %g -> %g", first, last);
    peft_state_dict_free(tp);
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST


/* the registry's rules for prompt-learning plugins: their own entries required, not inject */
START_TEST(registry_rules)
{
    char err[512] = "";
    const peft_tuner_vtable *real = peft_registry_get("prefix", err, sizeof err);
    ck_assert_msg(real, "%s", err);
    ck_assert_ptr_null(real->inject);
    ck_assert_int_eq(peft_registry_check_vtable(real, "prefix.so", err, sizeof err), 0);
    peft_tuner_vtable v = *real;
    v.prompt_init = NULL;
    ck_assert_int_ne(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "'prompt_init' is NULL"), "%s", err);
    v = *real;
    v.prefix_kv = NULL;
    ck_assert_int_ne(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "'prompt_embeddings' and 'prefix_kv' are NULL"), "%s", err);
    v = *real;
    v.struct_size = (uint32_t)offsetof(peft_tuner_vtable, prompt_init);
    ck_assert_int_ne(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "prompt-learning entries (ABI 1.1)"), "%s", err);
    v = *real;
    v.caps &= ~PEFT_CAP_PROMPT_LEARNING; /* a site method must have inject and forward */
    ck_assert_int_ne(peft_registry_check_vtable(&v, "x.so", err, sizeof err), 0);
    ck_assert_msg(strstr(err, "'inject' is NULL"), "%s", err);
}
END_TEST

/* PEFT's saved prefix_projection adapter loaded trainable: the saved table trains directly
 * (PEFT 0.13.2 builds the MLP and fails to load the table into it) */
START_TEST(projection_adapter_loads_trainable)
{
    peft_ctx *ctx = peft_ctx_new(7);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *b = load_base(ctx, "gpt2");
    peft_model *m = NULL;
    ck_assert_msg(peft_from_pretrained(ctx, b, tu_fixture("hf-peft/gpt2__prefix_proj/adapter"), NULL,
                                       1, &m) == 0, "%s", peft_errmsg(ctx));
    peft_state_dict *tp;
    ck_assert(peft_trainable_parameters(m, &tp) == 0);
    ck_assert_int_eq(tp->n, 1);
    ck_assert_str_eq(tp->names[0], "prompt_encoder.default.embedding.weight");
    ck_assert_int_eq(tp->tensors[0]->shape[0], 5);
    ck_assert_int_eq(tp->tensors[0]->shape[1], 128);
    peft_state_dict_free(tp);
    peft_model_free(m);
    peft_ctx_free(ctx);
}
END_TEST

int main(void)
{
    peft_rng_seed(&trng, 42);
    peft_set_warning_handler(tu_quiet, NULL);
    Suite *s = suite_create("prompt_learning");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    tcase_add_loop_test(tc, peft_saved_adapter, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, grad_prompt_embeddings);
    tcase_add_test(tk, grad_prefix_table);
    tcase_add_test(tk, grad_prefix_projection);
    tcase_add_test(tk, prefix_block_layout);
    tcase_add_test(tk, prefix_projection_save_load);
    tcase_add_test(tk, prompt_sample_vocab);
    suite_add_tcase(s, tk);
    TCase *tp = tcase_create("peft_layer");
    tcase_set_timeout(tp, 60);
    tcase_add_test(tp, config_filled_from_model);
    tcase_add_test(tp, hooks_follow_disable_and_delete);
    tcase_add_test(tp, status_refused_as_peft);
    tcase_add_test(tp, no_mixing);
    tcase_add_test(tp, config_errors);
    tcase_add_test(tp, text_adapter_loads);
    tcase_add_test(tp, text_init_uses_the_tokenizer);
    tcase_add_test(tp, training_moves_the_prompt);
    tcase_add_test(tp, registry_rules);
    tcase_add_test(tp, projection_adapter_loads_trainable);
    suite_add_tcase(s, tp);
    int failed = tu_run_suite(s);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
